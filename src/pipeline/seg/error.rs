//! The one error type of the SEG encoder and reader, worded for the operator who reads the
//! job log: what was wrong with which input, and what to do about it.

use std::path::PathBuf;

/// Why a segmentation could not be encoded or a SEG file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SegError {
    /// The reference-series geometry handed to the encoder is inconsistent or incomplete.
    #[error("source geometry is unusable for a SEG: {0} (check the reference series headers)")]
    InvalidGeometry(String),

    /// A segment mask does not have the shape of the source volume.
    #[error(
        "mask of segment {segment} has shape {found:?} but the source series is \
         [slices, rows, columns] = {expected:?}; resample the mask onto the source grid first"
    )]
    MaskShape {
        /// Segment number (1-based) of the offending mask.
        segment: usize,
        /// `[slices, rows, columns]` of the source geometry.
        expected: [usize; 3],
        /// Shape of the mask that was passed.
        found: [usize; 3],
    },

    /// The number of masks differs from the number of segment descriptions.
    #[error(
        "{segments} segment descriptions but {masks} masks; the pipeline output and its segment list disagree"
    )]
    SegmentCount {
        /// Number of `SegmentSpec`s.
        segments: usize,
        /// Number of masks.
        masks: usize,
    },

    /// An option or segment description cannot be written as a valid DICOM value.
    #[error("invalid SEG setting {field}: {reason}")]
    InvalidSetting {
        /// Which setting (for example `content_label` or `segments[1].label`).
        field: String,
        /// What is wrong with it and what is allowed.
        reason: String,
    },

    /// The source header lacks an attribute the SEG must copy.
    #[error("source instance has no {0}; cannot build a SEG that belongs to its study")]
    MissingSourceAttribute(&'static str),

    /// The input is valid DICOM but uses a feature this encoder or reader does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The SEG could not be wrapped with its file meta group.
    #[error("could not build the SEG file meta group: {0}")]
    Meta(String),

    /// A SEG file could not be opened or parsed as DICOM.
    #[error("cannot read SEG file {path}: {reason}")]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// The parser's explanation.
        reason: String,
    },

    /// A DICOM object was read but is not a well-formed BINARY segmentation.
    #[error("not a well-formed DICOM Segmentation: {0}")]
    Malformed(String),
}

impl SegError {
    /// Shorthand for [`SegError::InvalidSetting`].
    pub(crate) fn setting(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SegError::InvalidSetting {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
