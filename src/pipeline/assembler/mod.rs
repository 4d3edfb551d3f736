//! The study assembler: a pure state machine that decides when a study holds what a
//! pipeline needs. Events in (instance stored, association released, tick — each with the
//! time it happened), decisions out (job ready, give up). It never reads a clock, sleeps or
//! does I/O, so its timing is tested with explicit instants; the serve loop feeds it and
//! sleeps until [`Assembler::next_deadline`].
//!
//! Many studies are in flight at once and instances of different studies may interleave on
//! one association. A study is complete when every channel has a series part with at least
//! `min_slices` distinct instances AND either no instance arrived for `stable_seconds` or
//! (when configured) an association that brought its instances was released. After
//! `force_after_seconds` the pipeline's force policy applies.
//!
//! A pipeline with `inputs.job_per = "instance"` (2D images) is assembled the same way with
//! each instance as its own unit: it is complete on arrival, and the stable time or the
//! release of its association lets the job go.

mod inspect;
mod select;
mod study;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use inspect::{ChannelView, CollectingStudy, OperatorError};
pub use select::{ChannelChoice, Selection};
pub use study::PartKey;
use study::{Phase, SeriesPart, StudyState};

use crate::ingest::{InstanceHeader, Origin};
use crate::pipeline::definition::{
    AssignBy, ForcePolicy, JobPer, PipelineDefinition, SelectionRules,
};

/// Studies tracked per pipeline at most; past it the oldest is given up (bounded memory).
pub const MAX_STUDIES_IN_FLIGHT: usize = 10_000;
/// How long a decided study is remembered to recognise a re-send of the same instances.
pub const REMEMBER_DECIDED: Duration = Duration::from_secs(24 * 3600);

/// An instance the spool has stored, as the assembler needs it.
#[derive(Debug, Clone)]
pub struct InstanceSeen {
    /// Identity and series attributes read from the data set.
    pub header: InstanceHeader,
    /// The association and AE titles it came with; pipelines route on the called AE.
    pub origin: Origin,
}

crate::stored_enum::stored_enum! {
    /// Why a job was issued (stored with the job; the names predate this type).
    pub enum Trigger {
        /// No instance for `stable_seconds`.
        Stable = "Stable",
        /// The sending association was released with all inputs present.
        AssociationReleased = "AssociationReleased",
        /// `force_after_seconds` passed and the policy is `run`.
        Forced = "Forced",
        /// An operator forced the study complete (policy `run`) or asked for a job again.
        Operator = "Operator",
    }
}

/// A study ready for a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// One part per channel, in model input order.
    pub channels: Vec<ChannelInput>,
    /// What triggered it.
    pub trigger: Trigger,
    /// Notes on how channels were chosen (ties, ignored series).
    pub notes: Vec<String>,
    /// Hash of the chosen instances: the same inputs give the same fingerprint.
    pub fingerprint: u64,
}

/// The input of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInput {
    /// Channel name from the pipeline.
    pub name: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Temporal position, when the channel is one phase of a multi-phase series.
    pub temporal_position: Option<u32>,
    /// SeriesDescription, for logs.
    pub description: String,
    /// SOP Instance UIDs of the part.
    pub instances: Vec<String>,
}

/// What the assembler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run this job.
    Ready(JobSpec),
    /// Nothing will run for this study (until new instances arrive); the reason says why.
    GiveUp {
        pipeline: String,
        study_uid: String,
        reason: String,
    },
}

/// What a pipeline assembles one job from, and so what its units are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitKey {
    /// A study: keyed by its Study Instance UID.
    Study,
    /// One instance: keyed by its SOP Instance UID (`inputs.job_per = "instance"`).
    Instance,
}

/// The assembler for one pipeline.
struct PipelineAssembler {
    name: String,
    rules: SelectionRules,
    channel_names: Vec<String>,
    assign_by: AssignBy,
    min_slices: usize,
    stable: Duration,
    on_release: bool,
    force_after: Duration,
    force_policy: ForcePolicy,
    /// What one job covers, and so what `studies` is keyed by.
    unit: UnitKey,
    /// Units under assembly, by Study Instance UID or by SOP Instance UID (see `unit`).
    studies: HashMap<String, StudyState>,
}

/// The assembler for every configured pipeline.
pub struct Assembler {
    pipelines: Vec<PipelineAssembler>,
}

impl Assembler {
    /// One state machine per pipeline definition.
    pub fn new(definitions: &[PipelineDefinition]) -> Self {
        let pipelines = definitions
            .iter()
            .map(|d| PipelineAssembler {
                name: d.name.clone(),
                rules: d.selection_rules(),
                channel_names: d.inputs.channels.iter().map(|c| c.name.clone()).collect(),
                assign_by: d.inputs.assign_by,
                min_slices: d.inputs.min_slices,
                stable: Duration::from_secs(d.completion.stable_seconds),
                on_release: d.completion.on_association_release,
                force_after: Duration::from_secs(d.completion.force_after_seconds),
                force_policy: d.completion.force_policy,
                unit: match d.inputs.job_per {
                    JobPer::Study => UnitKey::Study,
                    JobPer::Instance => UnitKey::Instance,
                },
                studies: HashMap::new(),
            })
            .collect();
        Assembler { pipelines }
    }

    /// An instance was stored at `now`.
    pub fn on_instance(&mut self, seen: &InstanceSeen, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        for p in &mut self.pipelines {
            if p.accepts(seen) {
                out.extend(p.on_instance(seen, now));
            }
        }
        out
    }

    /// An instance read back from the spool at start-up: recorded, nothing decided yet
    /// (call [`Assembler::remember_job`] for finished jobs first, then tick as usual).
    pub fn restore_instance(&mut self, seen: &InstanceSeen, now: Instant) {
        for p in &mut self.pipelines {
            if p.accepts(seen)
                && (p.studies.len() < MAX_STUDIES_IN_FLIGHT
                    || p.studies.contains_key(p.unit_of(seen)))
            {
                p.record(seen, now);
            }
        }
    }

    /// An association was released at `now`.
    pub fn on_association_released(&mut self, association_id: u64, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        for p in &mut self.pipelines {
            out.extend(p.on_release(association_id, now));
        }
        out
    }

    /// Time passed; decide what is due at `now`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Decision> {
        self.pipelines
            .iter_mut()
            .flat_map(|p| p.on_tick(now))
            .collect()
    }

    /// The earliest instant at which a tick could decide something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pipelines
            .iter()
            .filter_map(|p| p.next_deadline())
            .min()
    }

    /// Tell the assembler that `pipeline` already produced a SEG for `study_uid` from the
    /// inputs with `fingerprint` (a job record found at start-up). If the study, as now
    /// collected, would give exactly those inputs, it is settled without a new job; a later
    /// change of inputs still gives a new job.
    pub fn remember_job(&mut self, pipeline: &str, study_uid: &str, fingerprint: u64) {
        if let Some(p) = self.pipelines.iter_mut().find(|p| p.name == pipeline) {
            p.remember_job(study_uid, fingerprint);
        }
    }

    /// Every SOP Instance UID the assembler holds, over all pipelines (to tell which stored
    /// instances it never heard of).
    pub fn known_instances(&self) -> std::collections::HashSet<String> {
        self.pipelines
            .iter()
            .flat_map(|p| p.studies.values())
            .flat_map(|s| s.parts.values())
            .flat_map(|part| part.instances.iter().cloned())
            .collect()
    }

    /// Studies currently collecting, over all pipelines (for logs).
    pub fn collecting(&self) -> usize {
        self.pipelines
            .iter()
            .map(|p| {
                p.studies
                    .values()
                    .filter(|s| s.phase == Phase::Collecting)
                    .count()
            })
            .sum()
    }
}

impl PipelineAssembler {
    fn accepts(&self, seen: &InstanceSeen) -> bool {
        let h = &seen.header;
        self.rules
            .modalities
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&h.modality))
            && (self.rules.sop_classes.is_empty()
                || self.rules.sop_classes.contains(&h.sop_class_uid))
            && (self.rules.called_ae_titles.is_empty()
                || self
                    .rules
                    .called_ae_titles
                    .iter()
                    .any(|ae| ae.trim() == seen.origin.called_ae.trim()))
            && self
                .rules
                .tag_rules
                .iter()
                .all(|(keyword, re)| h.attributes.get(keyword).is_some_and(|v| re.is_match(v)))
    }

    /// The key an instance is assembled under: its study, or itself.
    fn unit_of<'a>(&self, seen: &'a InstanceSeen) -> &'a str {
        match self.unit {
            UnitKey::Study => &seen.header.study_uid,
            UnitKey::Instance => &seen.header.sop_instance_uid,
        }
    }

    /// Record the instance and evaluate the one unit it touched: the cost per instance
    /// does not grow with the number of units collecting (the others are decided by
    /// `on_tick` at their deadlines).
    fn on_instance(&mut self, seen: &InstanceSeen, now: Instant) -> Vec<Decision> {
        let unit = self.unit_of(seen).to_string();
        let mut out = self.evict_if_full(&unit);
        self.record(seen, now);
        out.extend(self.evaluate(&unit, now));
        out
    }

    /// Add the instance to its study without deciding anything.
    fn record(&mut self, seen: &InstanceSeen, now: Instant) {
        let h = &seen.header;
        let unit = self.unit_of(seen).to_string();
        let study = self
            .studies
            .entry(unit)
            .or_insert_with(|| StudyState::new(&h.study_uid, now));
        if matches!(study.phase, Phase::Decided { .. }) {
            // New material for a decided study: collect again; the fingerprint tells later
            // whether the inputs really changed.
            study.phase = Phase::Collecting;
            study.first_seen = now;
            study.associations.clear();
        }
        study.last_instance = now;
        if let Some(id) = seen.origin.association_id {
            study.associations.insert(id);
        }
        let part = study
            .parts
            .entry(PartKey {
                series_uid: h.series_uid.clone(),
                temporal_position: h.temporal_position,
            })
            .or_insert_with(|| SeriesPart {
                description: h.series_description.clone(),
                series_number: h.series_number,
                acquisition_time: None,
                series_time: h.series_time.clone(),
                instances: Default::default(),
            });
        part.instances.insert(h.sop_instance_uid.clone());
        if !h.acquisition_time.is_empty()
            && part
                .acquisition_time
                .as_deref()
                .is_none_or(|t| h.acquisition_time.as_str() < t)
        {
            part.acquisition_time = Some(h.acquisition_time.clone());
        }
    }

    fn on_release(&mut self, association_id: u64, now: Instant) -> Vec<Decision> {
        if !self.on_release {
            return Vec::new();
        }
        let due: Vec<String> = self
            .studies
            .iter()
            .filter(|(_, s)| {
                s.phase == Phase::Collecting && s.associations.contains(&association_id)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut out = Vec::new();
        for uid in due {
            let selection = self.selection(&uid);
            if selection.complete(self.min_slices) {
                out.extend(self.decide_ready(&uid, selection, Trigger::AssociationReleased));
            }
        }
        out.extend(self.on_tick(now));
        out
    }

    fn on_tick(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        self.studies.retain(|_, s| {
            !matches!(s.phase, Phase::Decided { .. })
                || now.duration_since(s.last_instance) < REMEMBER_DECIDED
        });
        let collecting: Vec<String> = self
            .studies
            .iter()
            .filter(|(_, s)| s.phase == Phase::Collecting)
            .map(|(u, _)| u.clone())
            .collect();
        for uid in collecting {
            out.extend(self.evaluate(&uid, now));
        }
        out
    }

    /// Decide one collecting unit if its stable time or force timeout has come at `now`.
    fn evaluate(&mut self, uid: &str, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        let Some(s) = self
            .studies
            .get(uid)
            .filter(|s| s.phase == Phase::Collecting)
        else {
            return out;
        };
        let (first_seen, last_instance) = (s.first_seen, s.last_instance);
        let stable = now.duration_since(last_instance) >= self.stable;
        let forced = now.duration_since(first_seen) >= self.force_after;
        if !stable && !forced {
            // Nothing can be due: no need to select channels yet.
            return out;
        }
        let selection = self.selection(uid);
        if selection.complete(self.min_slices) && stable {
            out.extend(self.decide_ready(uid, selection, Trigger::Stable));
        } else if forced {
            let what = self.describe_missing(uid, &selection);
            if self.force_policy == ForcePolicy::Run && selection.all_matched() {
                out.extend(self.decide_ready(uid, selection, Trigger::Forced));
            } else {
                let reason = format!(
                    "not complete after {} s ({what}); force policy {:?}",
                    self.force_after.as_secs(),
                    self.force_policy
                );
                self.set_decided(uid, None);
                out.push(self.give_up(uid, reason));
            }
        }
        out
    }

    fn remember_job(&mut self, study_uid: &str, fingerprint: u64) {
        if self.unit == UnitKey::Instance {
            // Any instance of the study may be the one that job was for.
            let units: Vec<String> = self
                .studies
                .iter()
                .filter(|(_, s)| s.study_uid == study_uid)
                .map(|(unit, _)| unit.clone())
                .collect();
            for unit in units {
                self.remember_unit_job(&unit, fingerprint);
            }
        } else {
            self.remember_unit_job(study_uid, fingerprint);
        }
    }

    fn remember_unit_job(&mut self, study_uid: &str, fingerprint: u64) {
        let Some(study) = self.studies.get_mut(study_uid) else {
            return;
        };
        study.last_job_fingerprint = Some(fingerprint);
        if study.phase != Phase::Collecting {
            return;
        }
        let selection = self.selection(study_uid);
        if !selection.complete(self.min_slices) {
            return;
        }
        let study = &self.studies[study_uid];
        let channels: Vec<ChannelInput> = selection
            .chosen
            .iter()
            .map(|c| ChannelInput {
                name: self.channel_names[c.channel].clone(),
                series_uid: c.part.series_uid.clone(),
                temporal_position: c.part.temporal_position,
                description: String::new(),
                instances: study.parts[&c.part].instances.iter().cloned().collect(),
            })
            .collect();
        if fingerprint_of(&channels) == fingerprint {
            self.set_decided(study_uid, Some(fingerprint));
        } else if self.unit == UnitKey::Instance {
            // That job was for another instance of the study.
            self.studies
                .get_mut(study_uid)
                .expect("present above")
                .last_job_fingerprint = None;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.studies
            .values()
            .filter(|s| s.phase == Phase::Collecting)
            .map(|s| (s.last_instance + self.stable).min(s.first_seen + self.force_after))
            .min()
    }

    fn selection(&self, study_uid: &str) -> Selection {
        let study = &self.studies[study_uid];
        let parts: Vec<_> = study.parts.iter().collect();
        select::select(&parts, &self.rules, self.assign_by)
    }

    fn decide_ready(
        &mut self,
        study_uid: &str,
        selection: Selection,
        trigger: Trigger,
    ) -> Option<Decision> {
        let study = &self.studies[study_uid];
        let mut channels: Vec<ChannelInput> = selection
            .chosen
            .iter()
            .map(|c| {
                let part = &study.parts[&c.part];
                ChannelInput {
                    name: self.channel_names[c.channel].clone(),
                    series_uid: c.part.series_uid.clone(),
                    temporal_position: c.part.temporal_position,
                    description: part.description.clone(),
                    instances: part.instances.iter().cloned().collect(),
                }
            })
            .collect();
        channels.sort_by_key(|c| self.channel_names.iter().position(|n| *n == c.name));
        let fingerprint = fingerprint_of(&channels);
        let previous = study.last_job_fingerprint;
        let real_study_uid = study.study_uid.clone();
        let unchanged = previous == Some(fingerprint);
        self.set_decided(study_uid, Some(fingerprint));
        if unchanged {
            return Some(self.give_up(
                study_uid,
                "inputs unchanged since the last job (the same instances were sent again): no new SEG".into(),
            ));
        }
        let mut notes = selection.notes;
        if let Some(previous) = previous {
            notes.push(format!(
                "inputs changed since the last SEG of this study (inputs {previous:016x} -> {fingerprint:016x}): a new SEG series follows"
            ));
        }
        Some(Decision::Ready(JobSpec {
            pipeline: self.name.clone(),
            study_uid: real_study_uid,
            channels,
            trigger,
            notes,
            fingerprint,
        }))
    }

    /// A give-up decision for a unit; an instance unit names itself in the reason.
    fn give_up(&self, unit: &str, reason: String) -> Decision {
        let study_uid = self
            .studies
            .get(unit)
            .map_or_else(|| unit.to_string(), |s| s.study_uid.clone());
        let reason = if self.unit == UnitKey::Instance {
            format!("instance {unit}: {reason}")
        } else {
            reason
        };
        Decision::GiveUp {
            pipeline: self.name.clone(),
            study_uid,
            reason,
        }
    }

    fn set_decided(&mut self, study_uid: &str, job_fingerprint: Option<u64>) {
        if let Some(s) = self.studies.get_mut(study_uid) {
            s.phase = Phase::Decided {
                fingerprint: job_fingerprint,
            };
            if job_fingerprint.is_some() {
                s.last_job_fingerprint = job_fingerprint;
            }
        }
    }

    fn describe_missing(&self, study_uid: &str, selection: &Selection) -> String {
        let study = &self.studies[study_uid];
        let mut what: Vec<String> = selection
            .missing
            .iter()
            .map(|&c| format!("no series for channel {:?}", self.channel_names[c]))
            .collect();
        for c in &selection.chosen {
            if c.slices < self.min_slices {
                what.push(format!(
                    "channel {:?} (series {} {:?}) has {} of {} slices",
                    self.channel_names[c.channel],
                    c.part.series_uid,
                    study.parts[&c.part].description,
                    c.slices,
                    self.min_slices
                ));
            }
        }
        if what.is_empty() {
            "waiting for the study to be stable".into()
        } else {
            what.join("; ")
        }
    }

    fn evict_if_full(&mut self, incoming: &str) -> Vec<Decision> {
        if self.studies.len() < MAX_STUDIES_IN_FLIGHT || self.studies.contains_key(incoming) {
            return Vec::new();
        }
        let oldest = self
            .studies
            .iter()
            .min_by_key(|(_, s)| s.last_instance)
            .map(|(u, s)| (u.clone(), s.phase.clone()));
        match oldest {
            Some((uid, phase)) => {
                let decision = self.give_up(
                    &uid,
                    format!(
                        "more than {MAX_STUDIES_IN_FLIGHT} studies in flight; this was the least recent"
                    ),
                );
                self.studies.remove(&uid);
                if phase == Phase::Collecting {
                    vec![decision]
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        }
    }
}

/// FNV-1a over the chosen series and instances: stable across builds and Rust versions, so
/// it can be stored in job records and compared after a restart.
fn fingerprint_of(channels: &[ChannelInput]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Field separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for c in channels {
        eat(c.series_uid.as_bytes());
        eat(&c.temporal_position.unwrap_or(0).to_le_bytes());
        for sop in &c.instances {
            eat(sop.as_bytes());
        }
    }
    h
}

#[cfg(test)]
mod tests;
