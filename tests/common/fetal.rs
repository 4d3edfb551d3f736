//! The synthetic fetal head ultrasound image the fetal suites send and segment.

use std::path::Path;

use segnode::synth::{FetalUsParams, SynthUsImage, UsEncoding, write_fetal_us};

/// A fetal head image (with its `truth.toml`) in `dir`: `frames` > 1 makes a cine.
pub fn us_image(dir: &Path, seed: u64, encoding: UsEncoding, frames: u32) -> SynthUsImage {
    let params = FetalUsParams {
        seed,
        encoding,
        frames,
        ..FetalUsParams::default()
    };
    write_fetal_us(dir, &params).expect("write the synthetic fetal head image")
}

/// A single-frame image as an ultrasound machine stores it (JPEG baseline).
pub fn us_still(dir: &Path, seed: u64) -> SynthUsImage {
    us_image(dir, seed, UsEncoding::JpegBaseline, 1)
}
