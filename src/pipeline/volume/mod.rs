//! Volume assembly: the series a job selected, decoded and checked, as voxel arrays on one
//! patient grid.
//!
//! - [`load_series`] decodes one series (every transfer syntax dicom-rs decodes; the
//!   Modality LUT is applied) and orders its slices by position along the slice normal,
//!   reusing the SEG encoder's [`SourceGeometry`] so the voxel array and the SEG frames
//!   agree slice for slice. Rows and columns stay exactly as stored: no flips, no crops.
//! - [`stack_channels`] puts the channel series on the grid of the first, resampling (with
//!   a warning) those that differ, and refusing channels from another frame of reference.
//! - [`Grid`] maps voxel indices to patient coordinates and back.
//!
//! Submodules: `grid`, `load` (with the position `checks`), `stack`, `error`, and `parallel` (scoped-thread helpers
//! shared with the preprocessing and post-processing stages).

mod checks;
mod error;
mod grid;
mod load;
pub(crate) mod parallel;
mod stack;

use ndarray::Array3;

use crate::pipeline::seg::SourceGeometry;

pub use error::VolumeError;
pub use grid::Grid;
pub use load::load_series;
pub use stack::{ChannelInfo, ChannelStack, stack_channels};

/// One decoded series on its own grid.
#[derive(Debug, Clone)]
pub struct SeriesVolume {
    /// The SEG encoder's view of the series: instances ordered along the slice normal, as
    /// `voxels`' first axis (hand it to `encode_seg` unchanged).
    pub geometry: SourceGeometry,
    /// Patient geometry of `voxels`.
    pub grid: Grid,
    /// `[slice, row, col]` values after the Modality LUT; slice `k` is
    /// `geometry.slices[k]`, rows and columns exactly as stored.
    pub voxels: Array3<f32>,
    /// Series Instance UID, for logs and errors.
    pub series_uid: String,
    /// SeriesDescription (empty when absent), for logs and reports.
    pub description: String,
}
