//! The ground truth of a synthetic fetal head ultrasound image: the skull and brain
//! ellipses and the two brain structures, in pixel coordinates, stored as `truth.toml`
//! next to the instance.
//!
//! The renderer decides every pixel with [`FetalHeadTruth::contains`] on the pixel centre,
//! so a segmentation that is perfect on the image grid scores a Dice of exactly 1.0 against
//! [`FetalHeadTruth::mask`].

use std::fmt;
use std::path::Path;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::SynthError;
use super::shapes2d::{Ellipse, UsSector};

/// A structure a fetal head segmentation labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetalStructure {
    /// Everything inside the inner table of the skull (includes the CSP and the ventricle).
    Brain,
    /// The cavum septi pellucidi: the fluid-filled box on the midline, anterior third.
    Csp,
    /// The lateral ventricle of the far hemisphere (its atrium, posterior half).
    Lv,
}

impl FetalStructure {
    /// Every structure, in label order (brain = 1, CSP = 2, LV = 3).
    pub const ALL: [FetalStructure; 3] = [
        FetalStructure::Brain,
        FetalStructure::Csp,
        FetalStructure::Lv,
    ];

    /// Short lower-case name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            FetalStructure::Brain => "brain",
            FetalStructure::Csp => "csp",
            FetalStructure::Lv => "lv",
        }
    }
}

impl fmt::Display for FetalStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many pixels (per frame) each structure covers: what a perfect mask holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructurePixels {
    /// Pixels inside the inner skull ellipse.
    pub brain: u64,
    /// Pixels inside the CSP ellipse.
    pub csp: u64,
    /// Pixels inside the lateral ventricle ellipse.
    pub lv: u64,
}

/// The anatomy of a synthetic fetal head image and what it belongs to. Every frame of a
/// multi-frame instance shows this same anatomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetalHeadTruth {
    /// Study Instance UID of the image this truth describes.
    pub study_uid: String,
    /// SOP Instance UID of the image this truth describes.
    pub sop_instance_uid: String,
    /// Seed the image was generated with.
    pub seed: u64,
    /// Rows of the image (pixels down).
    pub rows: usize,
    /// Columns of the image (pixels across).
    pub columns: usize,
    /// Frames of the instance (all with this anatomy).
    pub frames: u32,
    /// Pixel spacing in mm, `[between rows, between columns]` (the DICOM PixelSpacing
    /// order), as the instance's ultrasound region calibration states it.
    pub pixel_spacing_mm: [f64; 2],
    /// A human note on what this file is.
    pub note: String,
    /// The imaged sector; outside it the image is black apart from burned-in annotations.
    pub sector: UsSector,
    /// The outer table of the skull (the head's outline).
    pub skull_outer: Ellipse,
    /// The inner table of the skull: the brain is everything inside it.
    pub skull_inner: Ellipse,
    /// The cavum septi pellucidi.
    pub csp: Ellipse,
    /// The lateral ventricle.
    pub lv: Ellipse,
    /// Pixels per structure, as counted by [`FetalHeadTruth::pixel_count`].
    pub pixels: StructurePixels,
}

impl FetalHeadTruth {
    /// The ellipse whose inside is `structure`.
    pub fn ellipse(&self, structure: FetalStructure) -> &Ellipse {
        match structure {
            FetalStructure::Brain => &self.skull_inner,
            FetalStructure::Csp => &self.csp,
            FetalStructure::Lv => &self.lv,
        }
    }

    /// Whether pixel (`row`, `col`) belongs to `structure`: its centre lies inside the
    /// structure's ellipse. This is the exact test the renderer used.
    pub fn contains(&self, structure: FetalStructure, row: usize, col: usize) -> bool {
        self.ellipse(structure).contains(col as f64, row as f64)
    }

    /// The perfect segmentation of `structure`, `[rows, columns]`.
    pub fn mask(&self, structure: FetalStructure) -> Array2<bool> {
        Array2::from_shape_fn((self.rows, self.columns), |(r, c)| {
            self.contains(structure, r, c)
        })
    }

    /// The number of pixels of `structure` in one frame.
    pub fn pixel_count(&self, structure: FetalStructure) -> u64 {
        let mut n = 0;
        for r in 0..self.rows {
            for c in 0..self.columns {
                n += u64::from(self.contains(structure, r, c));
            }
        }
        n
    }

    /// Read a truth file written by [`super::write_fetal_us`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SynthError> {
        super::truth::load_toml(path.as_ref())
    }

    /// Write this truth as TOML to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SynthError> {
        super::truth::save_toml(
            self,
            path.as_ref(),
            "# Ground truth of a segnode synthetic fetal head ultrasound image (pixel coordinates:\n\
             # x = column, y = row, pixel (c, r) centred at (c, r); ellipse angles in degrees from\n\
             # +x towards +y).\n",
        )
    }
}
