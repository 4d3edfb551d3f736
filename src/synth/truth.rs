//! The ground truth of a synthetic study: the lesion ellipsoid in patient coordinates,
//! stored as `truth.toml` next to the series.
//!
//! The renderer decides "lesion or not" for every voxel with [`LesionTruth::contains`] on
//! the voxel centre, so a segmentation that is perfect on the source grid scores a Dice of
//! exactly 1.0 against this file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SynthError;
use super::geometry::{Vec3, dot, sub};

/// The enhancing lesion of a synthetic DCE study and what it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionTruth {
    /// Study Instance UID of the study this truth describes.
    pub study_uid: String,
    /// Frame of Reference UID shared by every series of the study; the coordinates below
    /// are in this frame.
    pub frame_of_reference_uid: String,
    /// Seed the study was generated with.
    pub seed: u64,
    /// Ellipsoid centre in patient coordinates (LPS, mm).
    pub centre_mm: [f64; 3],
    /// Semi-axis lengths in mm, one per entry of `axes`.
    pub radii_mm: [f64; 3],
    /// Unit semi-axis directions (orthonormal rows) in patient coordinates.
    pub axes: [[f64; 3]; 3],
    /// Number of voxel centres of the DCE grid inside the ellipsoid (what a perfect mask holds).
    pub voxel_count: u64,
    /// Relative enhancement of the lesion per phase (pre = 0.0; post 1 > 1.0 means > 100 %).
    pub enhancement: Vec<f64>,
    /// A human note on what this file is.
    pub note: String,
}

impl LesionTruth {
    /// Whether the patient-coordinate point `p` (mm) lies inside the lesion ellipsoid
    /// (boundary included). This is the exact test the renderer used.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        ellipsoid_contains(self.centre_mm, self.radii_mm, &self.axes, p)
    }

    /// Read a truth file written by [`super::write_dce_study`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SynthError> {
        load_toml(path.as_ref())
    }

    /// Write this truth as TOML to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SynthError> {
        save_toml(
            self,
            path.as_ref(),
            "# Ground truth of a segnode synthetic DCE-MRI study (patient coordinates, LPS, mm).\n",
        )
    }
}

/// Read a truth file (TOML) into `T`.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SynthError> {
    let text = std::fs::read_to_string(path).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SynthError::TruthParse {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `truth` as TOML to `path`, after the comment lines `preamble`.
pub(crate) fn save_toml<T: Serialize>(
    truth: &T,
    path: &Path,
    preamble: &str,
) -> Result<(), SynthError> {
    let text = toml::to_string(truth).map_err(SynthError::TruthSerialize)?;
    std::fs::write(path, format!("{preamble}{text}")).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `p` is inside the ellipsoid with `centre`, semi-axes `radii` along unit `axes`.
pub(crate) fn ellipsoid_contains(centre: Vec3, radii: Vec3, axes: &[Vec3; 3], p: Vec3) -> bool {
    let d = sub(p, centre);
    let mut s = 0.0;
    for (axis, r) in axes.iter().zip(radii) {
        let t = dot(d, *axis) / r;
        s += t * t;
    }
    s <= 1.0
}
