//! The segmentation pipeline stages, one file each: assembler, volume, preprocess, infer,
//! post, seg.

pub mod assembler;
pub mod definition;
pub mod driver;
pub mod infer;
pub mod offline;
pub mod post;
pub mod preprocess;
pub mod recovery;
pub mod run;
pub mod seg;
pub mod volume;
