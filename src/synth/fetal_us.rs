//! Synthetic fetal head ultrasound: what a caller can ask for ([`FetalUsParams`],
//! [`UsEncoding`]) and [`write_fetal_us`], which lays out the anatomy for the seed, renders
//! the frames, writes the instance and its `truth.toml`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::SynthError;
use super::fetal_layout::layout;
use super::fetal_truth::{FetalHeadTruth, FetalStructure, StructurePixels};
use super::rng::stream;
use super::us_instance::{UsImageData, write_us_instance};
use super::us_phantom::{UsPhantom, luminance};
use crate::uids;

/// How the instance stores its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UsEncoding {
    /// RGB pixels compressed as JPEG Baseline (1.2.840.10008.1.2.4.50), stored as
    /// YBR_FULL_422 with chroma subsampled: what most ultrasound machines send.
    #[default]
    JpegBaseline,
    /// Uncompressed interleaved RGB, Explicit VR Little Endian.
    Rgb,
    /// Uncompressed 8-bit grey (MONOCHROME2), the luminance of the RGB image, Explicit VR
    /// Little Endian.
    Monochrome2,
}

impl UsEncoding {
    /// Every encoding, for tests and CLI help.
    pub const ALL: [UsEncoding; 3] = [
        UsEncoding::JpegBaseline,
        UsEncoding::Rgb,
        UsEncoding::Monochrome2,
    ];

    /// The transfer syntax of the written file.
    pub fn transfer_syntax(self) -> &'static str {
        match self {
            UsEncoding::JpegBaseline => uids::JPEG_BASELINE,
            UsEncoding::Rgb | UsEncoding::Monochrome2 => uids::EXPLICIT_VR_LE,
        }
    }

    /// The PhotometricInterpretation of the written file.
    pub fn photometric_interpretation(self) -> &'static str {
        match self {
            UsEncoding::JpegBaseline => "YBR_FULL_422",
            UsEncoding::Rgb => "RGB",
            UsEncoding::Monochrome2 => "MONOCHROME2",
        }
    }
}

impl fmt::Display for UsEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsEncoding::JpegBaseline => "jpeg",
            UsEncoding::Rgb => "rgb",
            UsEncoding::Monochrome2 => "mono",
        })
    }
}

impl FromStr for UsEncoding {
    type Err = SynthError;

    /// Accepts `jpeg`, `rgb` and `mono` and a few spellings of each, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" | "jpeg-baseline" | "ybr" => Ok(UsEncoding::JpegBaseline),
            "rgb" => Ok(UsEncoding::Rgb),
            "mono" | "monochrome2" | "grey" | "gray" => Ok(UsEncoding::Monochrome2),
            _ => Err(SynthError::UnknownEncoding(s.to_string())),
        }
    }
}

/// Parameters of a synthetic fetal head ultrasound image.
#[derive(Debug, Clone, PartialEq)]
pub struct FetalUsParams {
    /// Seed of everything but the UIDs: same seed, same pixels and same truth.
    pub seed: u64,
    /// How the pixels are stored.
    pub encoding: UsEncoding,
    /// Frames: 1 writes Ultrasound Image Storage, more a cine loop (Ultrasound Multi-frame
    /// Image Storage) of the same anatomy with fresh speckle per frame.
    pub frames: u32,
    /// Columns of the image.
    pub width: usize,
    /// Rows of the image.
    pub height: usize,
}

impl Default for FetalUsParams {
    /// One 959 x 661 JPEG Baseline frame, seed 1.
    fn default() -> Self {
        Self {
            seed: 1,
            encoding: UsEncoding::JpegBaseline,
            frames: 1,
            width: 959,
            height: 661,
        }
    }
}

impl FetalUsParams {
    /// Smallest width for which the scene and its annotations still fit.
    pub const MIN_WIDTH: usize = 320;
    /// Smallest height, see [`FetalUsParams::MIN_WIDTH`].
    pub const MIN_HEIGHT: usize = 220;
    /// Largest width or height.
    pub const MAX_SIZE: usize = 4096;
    /// Most frames of a cine loop (10 s at 30 frames per second).
    pub const MAX_FRAMES: u32 = 300;

    /// Check the parameters, saying what is wrong.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |why: String| Err(SynthError::InvalidParams(why));
        if !(Self::MIN_WIDTH..=Self::MAX_SIZE).contains(&self.width)
            || !(Self::MIN_HEIGHT..=Self::MAX_SIZE).contains(&self.height)
        {
            return bad(format!(
                "an image of {} x {} cannot hold the scene: width must be {}..={} and height {}..={}",
                self.width,
                self.height,
                Self::MIN_WIDTH,
                Self::MAX_SIZE,
                Self::MIN_HEIGHT,
                Self::MAX_SIZE
            ));
        }
        if !(1..=Self::MAX_FRAMES).contains(&self.frames) {
            return bad(format!(
                "frames = {} but it must be 1..={}",
                self.frames,
                Self::MAX_FRAMES
            ));
        }
        Ok(())
    }
}

/// A synthetic ultrasound instance on disk.
#[derive(Debug, Clone)]
pub struct SynthUsImage {
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID: Ultrasound Image Storage, or Ultrasound Multi-frame Image Storage
    /// when there is more than one frame.
    pub sop_class_uid: String,
    /// Transfer syntax of the file.
    pub transfer_syntax: String,
    /// PhotometricInterpretation as written.
    pub photometric_interpretation: String,
    /// The Part 10 file (`US0001.dcm`).
    pub path: PathBuf,
    /// Where the ground truth (`truth.toml`) was written.
    pub truth_path: PathBuf,
    /// Rows of each frame.
    pub rows: usize,
    /// Columns of each frame.
    pub columns: usize,
    /// Frames in the instance.
    pub frames: u32,
    /// The ground truth, as written to `truth_path`.
    pub truth: FetalHeadTruth,
}

/// Noise key of the ultrasound speckle (the DCE generator uses 100..=300).
const NOISE_US: u64 = 400;

/// Write a synthetic fetal head ultrasound instance as `outdir/US0001.dcm` and its ground
/// truth as `outdir/truth.toml` (both overwritten). Blocking (a fraction of a second per
/// frame): call it from `spawn_blocking` in async code.
pub fn write_fetal_us(outdir: &Path, params: &FetalUsParams) -> Result<SynthUsImage, SynthError> {
    params.validate()?;
    let (rows, columns) = (params.height, params.width);
    let mut truth = layout(params)?;
    truth.study_uid = uids::new_uid();
    truth.sop_instance_uid = uids::new_uid();
    truth.pixels = StructurePixels {
        brain: truth.pixel_count(FetalStructure::Brain),
        csp: truth.pixel_count(FetalStructure::Csp),
        lv: truth.pixel_count(FetalStructure::Lv),
    };

    let phantom = UsPhantom::new(&truth);
    let mut pixels = Vec::new();
    for frame in 0..params.frames {
        let rgb = phantom.render_rgb(stream(params.seed, &[NOISE_US, u64::from(frame)]));
        match params.encoding {
            UsEncoding::Monochrome2 => pixels.extend(luminance(&rgb)),
            UsEncoding::JpegBaseline | UsEncoding::Rgb => pixels.extend(rgb),
        }
    }
    let region = truth
        .sector
        .pixel_bounds(rows, columns)
        .ok_or_else(|| SynthError::InvalidParams("the sector misses the image".into()))?;

    std::fs::create_dir_all(outdir).map_err(|source| SynthError::Io {
        path: outdir.to_path_buf(),
        source,
    })?;
    let path = outdir.join("US0001.dcm");
    let series_uid = uids::new_uid();
    let written = write_us_instance(
        &path,
        &UsImageData {
            study_uid: &truth.study_uid,
            series_uid: &series_uid,
            sop_instance_uid: &truth.sop_instance_uid,
            seed: params.seed,
            rows,
            columns,
            frames: params.frames,
            encoding: params.encoding,
            region,
            apex: truth.sector.apex,
            spacing_mm: truth.pixel_spacing_mm[1],
            pixels,
        },
    )?;
    let truth_path = outdir.join("truth.toml");
    truth.save(&truth_path)?;
    Ok(SynthUsImage {
        study_uid: truth.study_uid.clone(),
        series_uid,
        sop_instance_uid: truth.sop_instance_uid.clone(),
        sop_class_uid: written.sop_class_uid.to_string(),
        transfer_syntax: written.transfer_syntax,
        photometric_interpretation: written.photometric_interpretation,
        path,
        truth_path,
        rows,
        columns,
        frames: params.frames,
        truth,
    })
}
