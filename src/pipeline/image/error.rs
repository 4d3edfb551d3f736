//! Why an image could not be loaded for a 2D pipeline. Each message names the file and
//! what to change at the sending side.

use std::path::PathBuf;

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} has no {attribute}; it is not a usable image")]
    Missing {
        path: PathBuf,
        attribute: &'static str,
    },
    #[error("cannot decode the pixel data of {path}: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error(
        "{path}: photometric interpretation {photometric} with {samples} sample(s) per pixel is not supported \
         (send MONOCHROME1/2, RGB, YBR_FULL or YBR_FULL_422)"
    )]
    Photometric {
        path: PathBuf,
        photometric: String,
        samples: u16,
    },
    #[error(
        "{path}: decoded {got} values, expected {expected} for {frames} frame(s) of {rows}x{columns}"
    )]
    Size {
        path: PathBuf,
        got: usize,
        expected: usize,
        frames: usize,
        rows: usize,
        columns: usize,
    },
}
