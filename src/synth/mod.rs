//! Synthetic DCE-MRI breast studies with known ground truth, for tests, benchmarks and
//! the demo.
//!
//! [`write_dce_study`] writes what a scanner would send for a breast DCE exam: four
//! dynamic phases (pre-contrast and three post-contrast, MR Image Storage, 12-bit,
//! Explicit VR Little Endian Part 10 files) on one geometry and frame of reference, an
//! optional 3-plane localizer that pipelines must ignore, and `truth.toml` describing the
//! one enhancing lesion (an ellipsoid with type-III kinetics). [`LesionTruth::contains`]
//! is exactly the test the renderer used per voxel centre, so a perfect segmentation on
//! the source grid has Dice 1.0.
//!
//! [`write_fetal_us`] writes what an obstetric ultrasound machine sends after a fetal head
//! biometry: one Ultrasound Image (or, with several frames, a Multi-frame cine loop) of the
//! transventricular plane, 959 x 661, RGB with burned-in annotations, JPEG Baseline
//! compressed by default (or uncompressed RGB or MONOCHROME2), calibrated by a US region
//! rather than PixelSpacing, and `truth.toml` with the skull, brain, cavum septi pellucidi
//! and lateral ventricle ellipses in pixel coordinates. [`FetalHeadTruth::contains`] is
//! exactly the renderer's per-pixel test, so a perfect segmentation has Dice 1.0 there too.
//!
//! Everything but the UIDs is a function of the seed. [`write_mr_series`] writes a single
//! plain series for tests that only need valid instances.

mod fetal_layout;
mod fetal_truth;
mod fetal_us;
mod geometry;
mod instance;
mod params;
mod phantom;
mod rng;
mod shapes2d;
mod study;
mod truth;
mod us_instance;
mod us_phantom;

#[cfg(test)]
mod fetal_us_tests;
#[cfg(test)]
mod test_attrs;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use fetal_truth::{FetalHeadTruth, FetalStructure, StructurePixels};
pub use fetal_us::{FetalUsParams, SynthUsImage, UsEncoding, write_fetal_us};
pub use params::{DceParams, Orientation};
pub use shapes2d::{Ellipse, UsSector};
pub use study::{write_dce_study, write_mr_series};
pub use truth::LesionTruth;

/// A synthetic study on disk.
#[derive(Debug, Clone)]
pub struct SynthStudy {
    /// Study Instance UID shared by every series.
    pub study_uid: String,
    /// Patient ID (derived from the seed).
    pub patient_id: String,
    /// Every series written, in SeriesNumber order (localizer first when present).
    pub series: Vec<SynthSeries>,
    /// Where the ground truth (`truth.toml`) was written.
    pub truth_path: PathBuf,
    /// Every file of every series, in the order of `series`.
    pub files: Vec<PathBuf>,
}

impl SynthStudy {
    /// The DCE phases, in temporal order (the localizer left out).
    pub fn dce_phases(&self) -> Vec<&SynthSeries> {
        let mut phases: Vec<&SynthSeries> = self
            .series
            .iter()
            .filter(|s| s.temporal_position.is_some())
            .collect();
        phases.sort_by_key(|s| s.temporal_position);
        phases
    }
}

/// One series of a synthetic study.
#[derive(Debug, Clone)]
pub struct SynthSeries {
    /// Series Instance UID.
    pub series_uid: String,
    /// SeriesDescription as written, e.g. "Ax Vibrant DCE post 1" or "3-plane loc".
    pub description: String,
    /// SeriesNumber as written.
    pub series_number: i32,
    /// TemporalPositionIdentifier (1 = pre-contrast … 4) for DCE phases, `None` otherwise.
    pub temporal_position: Option<u32>,
    /// The files, in InstanceNumber order (IM0001 first).
    pub files: Vec<PathBuf>,
}

/// Why a synthetic study could not be generated or its truth read.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The parameters cannot give a usable study.
    #[error("invalid synthetic study parameters: {0}")]
    InvalidParams(String),
    /// An orientation name that is not one of the four.
    #[error("unknown orientation {0:?}: use axial, sagittal, coronal or oblique")]
    UnknownOrientation(String),
    /// An ultrasound pixel encoding name that is not one of the three.
    #[error("unknown ultrasound encoding {0:?}: use jpeg, rgb or mono")]
    UnknownEncoding(String),
    /// No lesion of useful size fits the tissue and field of view (too few slices or pixels).
    #[error(
        "cannot place a lesion inside the breast tissue and field of view; use more slices or a larger matrix"
    )]
    LesionPlacement,
    /// A file or directory could not be created, written or read.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file meta group of an instance could not be built.
    #[error("cannot build the file meta group for {path}: {source}")]
    Meta {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dicom_object::WithMetaError>,
    },
    /// An instance could not be written as DICOM.
    #[error("cannot write DICOM file {path}: {source}")]
    WriteDicom {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dicom_object::WriteError>,
    },
    /// The pixel data could not be encoded in the requested transfer syntax.
    #[error("cannot encode the pixel data of {path}: {why}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// What the encoder reported.
        why: String,
    },
    /// `truth.toml` is not valid TOML or lacks fields.
    #[error("cannot parse ground truth {path}: {source}")]
    TruthParse {
        /// The truth file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: toml::de::Error,
    },
    /// The truth could not be serialised (should not happen).
    #[error("cannot serialise ground truth: {0}")]
    TruthSerialize(#[source] toml::ser::Error),
}
