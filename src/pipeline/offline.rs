//! Planning a job from a folder of files (`segnode segment`): the same channel selection
//! the node applies to a study arriving over the network, run over files on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;

use crate::ingest::files::collect_dicom_files;
use crate::ingest::{InstanceHeader, Origin};
use crate::pipeline::assembler::{Assembler, Decision, InstanceSeen, JobSpec};
use crate::pipeline::definition::{JobPer, PipelineDefinition};

/// Why no job could be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no DICOM files under {0}")]
    NoFiles(PathBuf),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("more than one study under {dir} ({count}); point at one study's folder")]
    SeveralStudies { dir: PathBuf, count: usize },
    #[error(
        "{count} images under {dir}: this pipeline runs one job per image; point at one image file"
    )]
    SeveralImages { dir: PathBuf, count: usize },
    #[error("pipeline {pipeline} cannot run on this study: {reason}")]
    NotApplicable { pipeline: String, reason: String },
}

/// A planned job: the assembler's choice and the files of each channel.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// What the assembler chose, and why.
    pub spec: JobSpec,
    /// Per channel (name, files), in model input order.
    pub channels: Vec<(String, Vec<PathBuf>)>,
}

/// The folder's files count as one association, released once all are read, so that a
/// complete study is decided at once rather than after its stable time.
const FOLDER_ASSOCIATION: u64 = 0;

/// Read every DICOM file under `dir` and choose the pipeline's channels among its series.
pub fn plan_folder(definition: &PipelineDefinition, dir: &Path) -> Result<PlannedJob, PlanError> {
    let collected = collect_dicom_files(&[dir.to_path_buf()]);
    if let Some((path, reason)) = collected.failed.first() {
        // A corrupt file would otherwise surface later as a puzzling slice gap.
        return Err(PlanError::Unreadable {
            path: path.clone(),
            reason: format!(
                "{reason} ({} unreadable file(s) in the folder; remove or replace them)",
                collected.failed.len()
            ),
        });
    }
    if collected.files.is_empty() {
        return Err(PlanError::NoFiles(dir.to_path_buf()));
    }
    let called_ae = definition
        .applies_to
        .called_ae_titles
        .first()
        .cloned()
        .unwrap_or_default();
    let mut assembler = Assembler::new(std::slice::from_ref(definition));
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    let mut studies = std::collections::BTreeSet::new();
    let now = Instant::now();
    for file in &collected.files {
        let obj = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&file.path)
            .map_err(|e| PlanError::Unreadable {
                path: file.path.clone(),
                reason: e.to_string(),
            })?;
        let header = InstanceHeader::from_object(&obj).map_err(|e| PlanError::Unreadable {
            path: file.path.clone(),
            reason: e.to_string(),
        })?;
        studies.insert(header.study_uid.clone());
        paths.insert(header.sop_instance_uid.clone(), file.path.clone());
        assembler.on_instance(
            &InstanceSeen {
                header,
                origin: Origin {
                    association_id: Some(FOLDER_ASSOCIATION),
                    calling_ae: String::new(),
                    called_ae: called_ae.clone(),
                },
            },
            now,
        );
    }
    if studies.len() > 1 {
        return Err(PlanError::SeveralStudies {
            dir: dir.to_path_buf(),
            count: studies.len(),
        });
    }
    let mut decisions = assembler.on_association_released(FOLDER_ASSOCIATION, now);
    if decisions.is_empty() {
        // Not complete: let the force rule speak, which says what is missing.
        let later = now
            + Duration::from_secs(definition.completion.force_after_seconds)
            + Duration::from_secs(1);
        decisions = assembler.on_tick(later);
    }
    if definition.inputs.job_per == JobPer::Instance && decisions.len() > 1 {
        return Err(PlanError::SeveralImages {
            dir: dir.to_path_buf(),
            count: decisions.len(),
        });
    }
    match decisions.into_iter().next() {
        Some(Decision::Ready(spec)) => {
            let channels = spec
                .channels
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.instances
                            .iter()
                            .filter_map(|sop| paths.get(sop).cloned())
                            .collect(),
                    )
                })
                .collect();
            Ok(PlannedJob { spec, channels })
        }
        Some(Decision::GiveUp { reason, .. }) => Err(PlanError::NotApplicable {
            pipeline: definition.name.clone(),
            reason,
        }),
        None => Err(PlanError::NotApplicable {
            pipeline: definition.name.clone(),
            reason: format!(
                "no series of modality {:?} and an accepted SOP class",
                definition.applies_to.modalities
            ),
        }),
    }
}
