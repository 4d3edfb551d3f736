//! What a caller can ask of the generator: slice orientation and the DCE study parameters.

use std::fmt;
use std::str::FromStr;

use super::SynthError;

/// Slice orientation of the generated DCE series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Orientation {
    /// Transverse slices, ImageOrientationPatient (1,0,0,0,1,0).
    #[default]
    Axial,
    /// Sagittal slices, (0,1,0,0,0,-1).
    Sagittal,
    /// Coronal slices, (1,0,0,0,0,-1).
    Coronal,
    /// Axial tilted 20° about the left-right axis and 10° about the anterior-posterior axis.
    Oblique,
}

impl Orientation {
    /// Every orientation, for tests and CLI help.
    pub const ALL: [Orientation; 4] = [
        Orientation::Axial,
        Orientation::Sagittal,
        Orientation::Coronal,
        Orientation::Oblique,
    ];

    /// The prefix a scanner puts in front of a series description ("Ax", "Sag"...).
    pub fn description_prefix(self) -> &'static str {
        match self {
            Orientation::Axial => "Ax",
            Orientation::Sagittal => "Sag",
            Orientation::Coronal => "Cor",
            Orientation::Oblique => "Obl",
        }
    }
}

impl fmt::Display for Orientation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Orientation::Axial => "axial",
            Orientation::Sagittal => "sagittal",
            Orientation::Coronal => "coronal",
            Orientation::Oblique => "oblique",
        })
    }
}

impl FromStr for Orientation {
    type Err = SynthError;

    /// Accepts the full names and the scanner abbreviations, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "axial" | "ax" | "transverse" => Ok(Orientation::Axial),
            "sagittal" | "sag" => Ok(Orientation::Sagittal),
            "coronal" | "cor" => Ok(Orientation::Coronal),
            "oblique" | "obl" => Ok(Orientation::Oblique),
            _ => Err(SynthError::UnknownOrientation(s.to_string())),
        }
    }
}

/// Parameters of a synthetic DCE-MRI breast study.
#[derive(Debug, Clone, PartialEq)]
pub struct DceParams {
    /// Slice orientation of the four DCE phases.
    pub orientation: Orientation,
    /// Number InstanceNumber 1 at the LAST slice position, so a reader that sorts by
    /// InstanceNumber instead of geometry gets the volume backwards.
    pub reverse: bool,
    /// Slices per phase.
    pub slices: usize,
    /// Rows and columns per slice.
    pub size: usize,
    /// Seed of everything but the UIDs: same seed, same pixels and same truth geometry.
    pub seed: u64,
    /// In-plane pixel spacing (mm), both directions.
    pub pixel_spacing_mm: f64,
    /// Slice thickness and spacing between slice centres (mm): slices are contiguous.
    pub slice_thickness_mm: f64,
    /// Also write a 3-plane localizer series that pipelines must ignore.
    pub with_localizer: bool,
}

impl Default for DceParams {
    /// A benchmark-sized study: 4 x 128 slices of 256 x 256, 0.7 mm pixels (179 mm field
    /// of view), 1.5 mm slices, axial, with a localizer.
    fn default() -> Self {
        Self {
            orientation: Orientation::Axial,
            reverse: false,
            slices: 128,
            size: 256,
            seed: 1,
            pixel_spacing_mm: 0.7,
            slice_thickness_mm: 1.5,
            with_localizer: true,
        }
    }
}

impl DceParams {
    /// Smallest slice count and matrix size for which a lesion of useful size fits.
    pub const MIN_SLICES: usize = 8;
    /// See [`DceParams::MIN_SLICES`].
    pub const MIN_SIZE: usize = 16;

    /// Check the parameters, saying what is wrong.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |why: String| Err(SynthError::InvalidParams(why));
        if self.slices < Self::MIN_SLICES {
            return bad(format!(
                "slices = {} but at least {} are needed to hold a lesion",
                self.slices,
                Self::MIN_SLICES
            ));
        }
        if self.size < Self::MIN_SIZE || self.size > u16::MAX as usize {
            return bad(format!(
                "size = {} but it must be between {} and {}",
                self.size,
                Self::MIN_SIZE,
                u16::MAX
            ));
        }
        if !(self.pixel_spacing_mm.is_finite() && self.pixel_spacing_mm > 0.0) {
            return bad(format!(
                "pixel spacing {} mm must be positive",
                self.pixel_spacing_mm
            ));
        }
        if !(self.slice_thickness_mm.is_finite() && self.slice_thickness_mm > 0.0) {
            return bad(format!(
                "slice thickness {} mm must be positive",
                self.slice_thickness_mm
            ));
        }
        Ok(())
    }
}
