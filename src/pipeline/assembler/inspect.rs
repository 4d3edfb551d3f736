//! What an operator sees of the assembler and what they may ask of it: the studies still
//! collecting (each channel present or missing, slice counts, what the study waits for,
//! when it will be forced), forcing one complete under its pipeline's force policy, and
//! issuing a job again for a study the assembler still holds. Pure, like the rest of the
//! assembler: the caller passes the time.

use std::time::Instant;

use super::study::Phase;
use super::{Assembler, Decision, PipelineAssembler, Trigger};
use crate::pipeline::definition::ForcePolicy;

/// One study (or instance, for per-instance pipelines) still collecting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectingStudy {
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// One entry per model channel, in input order.
    pub channels: Vec<ChannelView>,
    /// Slices each channel needs.
    pub min_slices: usize,
    /// Why no job has run yet, in words.
    pub waiting_for: String,
    /// Seconds since its first instance (since the last decision).
    pub collecting_seconds: f64,
    /// Seconds until the force policy applies.
    pub forced_in_seconds: f64,
    /// What happens then: `run` or `drop`.
    pub force_policy: &'static str,
}

/// One channel of a collecting study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelView {
    /// Channel name from the pipeline.
    pub name: String,
    /// A series was matched to it.
    pub present: bool,
    /// SeriesDescription of that series.
    pub series_description: Option<String>,
    /// Distinct instances it holds.
    pub slices: usize,
}

/// Why an operator's request could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "study {0} is not collecting in any pipeline (already decided, never received, or older than the assembler keeps); see /api/studies"
    )]
    NotCollecting(String),
    #[error(
        "pipeline {pipeline} no longer holds study {study_uid} (a restart forgets studies older than its force timeout): send the study again"
    )]
    NotHeld { pipeline: String, study_uid: String },
    #[error("pipeline {pipeline} cannot run study {study_uid} yet: {what}")]
    NotRunnable {
        pipeline: String,
        study_uid: String,
        what: String,
    },
}

fn policy_name(policy: ForcePolicy) -> &'static str {
    match policy {
        ForcePolicy::Run => "run",
        ForcePolicy::Drop => "drop",
    }
}

impl Assembler {
    /// Every unit still collecting, over all pipelines, oldest first.
    pub fn collecting_studies(&self, now: Instant) -> Vec<CollectingStudy> {
        let mut out: Vec<(Instant, CollectingStudy)> = self
            .pipelines
            .iter()
            .flat_map(|p| p.collecting_views(now))
            .collect();
        out.sort_by_key(|(first, _)| *first);
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// Units collecting per pipeline (every pipeline listed, zeros included).
    pub fn collecting_per_pipeline(&self) -> Vec<(String, usize)> {
        self.pipelines
            .iter()
            .map(|p| {
                let n = p
                    .studies
                    .values()
                    .filter(|s| s.phase == Phase::Collecting)
                    .count();
                (p.name.clone(), n)
            })
            .collect()
    }

    /// Force every unit of `study_uid` that is collecting, as `force_after_seconds` would:
    /// `run` issues a job when every channel has a series (slices may be short), otherwise
    /// the study is given up with the reason.
    pub fn force(&mut self, study_uid: &str) -> Result<Vec<Decision>, OperatorError> {
        let mut out = Vec::new();
        for p in &mut self.pipelines {
            let units: Vec<String> = p
                .studies
                .iter()
                .filter(|(_, s)| s.phase == Phase::Collecting && s.study_uid == study_uid)
                .map(|(unit, _)| unit.clone())
                .collect();
            for unit in units {
                out.extend(p.force_unit(&unit));
            }
        }
        if out.is_empty() {
            return Err(OperatorError::NotCollecting(study_uid.to_string()));
        }
        Ok(out)
    }

    /// Issue a job for `study_uid` in `pipeline` again with the inputs held now, even when
    /// they are the ones the last job had (an operator re-run).
    pub fn rerun(&mut self, pipeline: &str, study_uid: &str) -> Result<Decision, OperatorError> {
        let not_held = || OperatorError::NotHeld {
            pipeline: pipeline.to_string(),
            study_uid: study_uid.to_string(),
        };
        let p = self
            .pipelines
            .iter_mut()
            .find(|p| p.name == pipeline)
            .ok_or_else(not_held)?;
        let unit = p
            .studies
            .iter()
            .find(|(_, s)| s.study_uid == study_uid)
            .map(|(unit, _)| unit.clone())
            .ok_or_else(not_held)?;
        let selection = p.selection(&unit);
        if !selection.all_matched() {
            return Err(OperatorError::NotRunnable {
                pipeline: pipeline.to_string(),
                study_uid: study_uid.to_string(),
                what: p.describe_missing(&unit, &selection),
            });
        }
        if let Some(s) = p.studies.get_mut(&unit) {
            s.last_job_fingerprint = None;
        }
        p.decide_ready(&unit, selection, Trigger::Operator)
            .ok_or_else(not_held)
    }
}

impl PipelineAssembler {
    fn collecting_views(&self, now: Instant) -> Vec<(Instant, CollectingStudy)> {
        self.studies
            .iter()
            .filter(|(_, s)| s.phase == Phase::Collecting)
            .map(|(unit, s)| {
                let selection = self.selection(unit);
                let channels = self
                    .channel_names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let chosen = selection.chosen.iter().find(|c| c.channel == i);
                        ChannelView {
                            name: name.clone(),
                            present: chosen.is_some(),
                            series_description: chosen
                                .map(|c| s.parts[&c.part].description.clone()),
                            slices: chosen.map_or(0, |c| c.slices),
                        }
                    })
                    .collect();
                let waiting_for = if selection.complete(self.min_slices) {
                    let quiet = now.duration_since(s.last_instance);
                    format!(
                        "complete; waiting for the study to be stable ({:.0} of {} s without a new instance{})",
                        quiet.as_secs_f64(),
                        self.stable.as_secs(),
                        if self.on_release {
                            ", or the sending association's release"
                        } else {
                            ""
                        }
                    )
                } else {
                    self.describe_missing(unit, &selection)
                };
                let forced_at = s.first_seen + self.force_after;
                let view = CollectingStudy {
                    pipeline: self.name.clone(),
                    study_uid: s.study_uid.clone(),
                    channels,
                    min_slices: self.min_slices,
                    waiting_for,
                    collecting_seconds: now.duration_since(s.first_seen).as_secs_f64(),
                    forced_in_seconds: forced_at
                        .checked_duration_since(now)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    force_policy: policy_name(self.force_policy),
                };
                (s.first_seen, view)
            })
            .collect()
    }

    fn force_unit(&mut self, unit: &str) -> Option<Decision> {
        let selection = self.selection(unit);
        if self.force_policy == ForcePolicy::Run && selection.all_matched() {
            return self.decide_ready(unit, selection, Trigger::Operator);
        }
        let what = self.describe_missing(unit, &selection);
        let reason = format!(
            "forced complete by an operator ({what}); force policy {}",
            policy_name(self.force_policy)
        );
        self.set_decided(unit, None);
        Some(self.give_up(unit, reason))
    }
}
