//! What the HTTP handlers read and act on: the node's config, spool, pipelines (their
//! models), the assembler's control handle and the destinations' states.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::outbox::Destinations;
use crate::pipeline::control::PipelineControl;
use crate::pipeline::job::LoadedPipeline;
use crate::spool::Spool;

/// Everything the handlers share (one per node).
pub struct HttpState {
    /// The effective config.
    pub config: Arc<Config>,
    /// The node's spool.
    pub spool: Arc<Spool>,
    /// The models the enabled pipelines run.
    pub models: Vec<ModelInfo>,
    /// Inspect the assembler, force studies, re-run jobs.
    pub control: PipelineControl,
    /// Pause, resume and last answer of each destination.
    pub destinations: Arc<Destinations>,
    /// The bearer token actions require, if configured.
    pub token: Option<String>,
    /// When the node started.
    pub started: Instant,
}

/// One enabled pipeline's model, as loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// Pipeline name.
    pub pipeline: String,
    /// The model file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of that file when it was loaded (hex).
    pub sha256: String,
    /// The libtorch device it runs on (`cpu`, `cuda:0`).
    pub device: String,
    /// `fp32` or `bf16`.
    pub precision: crate::pipeline::infer::Precision,
}

impl ModelInfo {
    /// Describe a loaded pipeline's model (reads the file to hash it: blocking).
    pub fn of(pipeline: &LoadedPipeline) -> ModelInfo {
        let file = pipeline.model.path().to_path_buf();
        let sha256 = match std::fs::read(&file) {
            Ok(bytes) => Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            Err(_) => "unreadable".into(),
        };
        ModelInfo {
            pipeline: pipeline.definition.name.clone(),
            file,
            sha256,
            device: device_name(pipeline.model.device()),
            precision: pipeline.definition.model.precision,
        }
    }
}

fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
