//! DICOM Segmentation (SEG) output: a BINARY multi-frame Segmentation Storage instance
//! (PS3.3 A.51), or a LABELMAP one (Supplement 243), that overlays exactly on the source
//! images, and an independent reader.
//!
//! The encoder follows `SEG.md`: one frame per source slice per segment (by segment, then
//! along the slice normal), per-frame ImagePositionPatient and source-image references,
//! ImageOrientationPatient copied verbatim, references to the series the frames lie on
//! (the model's other inputs as related series), pixel
//! data as one continuous LSB-first bit stream. Submodules, one idea each:
//!
//! - [`geometry`] holds the source grid ([`SourceGeometry`]) and its checks (the private
//!   `extract` builds one from source headers);
//! - [`segments`] and [`codes`] say what each segment is, in SNOMED CT / DCM codes;
//! - [`options`] holds the series-level settings ([`SegOptions`]);
//! - [`encode`] (with the private `header` and `frames`) assembles the instance;
//! - [`bits`] packs and unpacks 1-bit pixels (BINARY), the private `labelmap` writes
//!   8/16-bit segment-number frames (LABELMAP);
//! - `related` names the model's other input series (Related Series Sequence);
//! - [`reader`] reads a SEG back ([`read_seg`]), for tests and to check what was sent;
//! - [`error`] defines [`SegError`].

pub mod bits;
pub mod codes;
pub(crate) mod elements;
pub mod encode;
pub mod error;
mod extract;
mod frames;
pub mod geometry;
pub(crate) mod header;
mod labelmap;
pub mod options;
pub mod reader;
mod related;
pub mod segments;

pub use codes::{Code, KnownCode};
pub use encode::encode_seg;
pub use error::SegError;
pub use geometry::{SourceGeometry, SourceSlice};
pub use header::MANUFACTURER;
pub use options::{SegOptions, SegType, SeriesReference};
pub use reader::{ReferencedSeries, SegContents, SegFrame, SegmentInfo, read_seg};
pub use segments::SegmentSpec;
