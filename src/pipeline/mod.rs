//! The segmentation pipeline stages, one file each: assembler, volume, preprocess, infer,
//! post, seg, overlay; `activation` turns model output into masks, `image` loads 2D images.
//! `job` is what every job shares, `run` runs a volume job and `run_image` an image job;
//! `load` turns a config into loaded pipelines, `driver` runs them inside the node.

pub mod activation;
pub mod assembler;
pub mod control;
pub mod definition;
pub mod driver;
pub mod image;
pub mod infer;
pub mod job;
pub mod load;
pub mod offline;
pub mod output;
pub mod overlay;
pub mod post;
pub mod preprocess;
pub mod recovery;
pub mod report;
pub mod run;
pub mod run_image;
pub mod seg;
pub mod volume;
