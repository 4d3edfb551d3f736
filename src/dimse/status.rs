//! DIMSE status codes (PS3.7 Annex C) for the services segnode implements.

/// A DIMSE status value with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// Success.
    pub const SUCCESS: Status = Status(0x0000);
    /// C-STORE: Refused, out of resources (disk floor reached, spool write failed).
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// C-STORE: Error, data set does not match SOP class.
    pub const DATASET_DOES_NOT_MATCH_SOP_CLASS: Status = Status(0xA900);
    /// C-STORE: Error, cannot understand (unparseable data set, missing UIDs).
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// SOP class not supported (general failure, PS3.7 C.5.6).
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// Unrecognized operation (general failure, PS3.7 C.5.7).
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    /// Processing failure (general failure, PS3.7 C.5.2).
    pub const PROCESSING_FAILURE: Status = Status(0x0110);
    /// C-STORE warning: coercion of data elements.
    pub const COERCION_OF_DATA_ELEMENTS: Status = Status(0xB000);

    /// Whether this status means the operation succeeded (with or without warning).
    pub fn is_success_or_warning(self) -> bool {
        self.0 == 0x0000
            || matches!(self.0, 0x0001 | 0x0107 | 0x0116)
            || (self.0 & 0xF000) == 0xB000
    }

    /// Whether this status is a warning.
    pub fn is_warning(self) -> bool {
        matches!(self.0, 0x0001 | 0x0107 | 0x0116) || (self.0 & 0xF000) == 0xB000
    }

    /// A short operator-facing description of the status class.
    pub fn describe(self) -> &'static str {
        match self.0 {
            0x0000 => "success",
            0xA700..=0xA7FF => "refused: out of resources",
            0xA900..=0xA9FF => "error: data set does not match SOP class",
            0xC000..=0xCFFF => "error: cannot understand",
            0x0122 => "refused: SOP class not supported",
            0x0211 => "unrecognized operation",
            0x0110 => "processing failure",
            0xFE00 => "cancelled",
            _ if self.is_warning() => "warning",
            _ => "failure",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:04X} ({})", self.0, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(Status::SUCCESS.is_success_or_warning());
        assert!(Status::COERCION_OF_DATA_ELEMENTS.is_success_or_warning());
        assert!(!Status::OUT_OF_RESOURCES.is_success_or_warning());
        assert_eq!(Status(0xA701).describe(), "refused: out of resources");
        assert_eq!(
            Status::CANNOT_UNDERSTAND.to_string(),
            "0xC000 (error: cannot understand)"
        );
    }
}
