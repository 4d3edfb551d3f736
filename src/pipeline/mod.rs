//! The segmentation pipeline stages, one file each: assembler, volume, preprocess, infer,
//! post, seg; `activation` turns model output into masks, `image` loads 2D images,
//! `run` and `run_image` run one job.

pub mod activation;
pub mod assembler;
pub mod control;
pub mod definition;
pub mod driver;
pub mod image;
pub mod infer;
pub mod offline;
pub mod output;
pub mod post;
pub mod preprocess;
pub mod recovery;
pub mod run;
pub mod run_image;
pub mod seg;
pub mod volume;
