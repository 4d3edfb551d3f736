//! Channel selection: which series (or temporal-position part of a series) of a study
//! feeds which model channel, and why. Deterministic for a given study content.

use std::cmp::Ordering;

use super::study::{PartKey, SeriesPart};
use crate::pipeline::definition::{AssignBy, SelectionRules};

/// The series part chosen for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChoice {
    /// Channel index in model input order.
    pub channel: usize,
    /// The series part.
    pub part: PartKey,
    /// Distinct instances it holds.
    pub slices: usize,
}

/// Result of matching a study's parts to the channels.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// One entry per channel that found a candidate (index = channel when complete).
    pub chosen: Vec<ChannelChoice>,
    /// Channels without a candidate.
    pub missing: Vec<usize>,
    /// Human-readable notes on ties and ignored candidates.
    pub notes: Vec<String>,
}

impl Selection {
    /// Every channel has a candidate.
    pub fn all_matched(&self) -> bool {
        self.missing.is_empty()
    }

    /// Every channel has a candidate with at least `min_slices` instances.
    pub fn complete(&self, min_slices: usize) -> bool {
        self.all_matched() && self.chosen.iter().all(|c| c.slices >= min_slices)
    }
}

/// Match parts to channels following the pipeline's strategy.
pub fn select(
    parts: &[(&PartKey, &SeriesPart)],
    rules: &SelectionRules,
    assign_by: AssignBy,
) -> Selection {
    let candidates: Vec<(&PartKey, &SeriesPart)> = parts
        .iter()
        .copied()
        .filter(|(_, p)| {
            !rules
                .exclude
                .as_ref()
                .is_some_and(|re| re.is_match(&p.description))
        })
        .collect();
    let mut sel = Selection::default();
    match assign_by {
        AssignBy::Description => {
            for (channel, re) in rules.channels.iter().enumerate() {
                let re = re
                    .as_ref()
                    .expect("validated: description channels have a regex");
                let mut matching: Vec<_> = candidates
                    .iter()
                    .filter(|(_, p)| re.is_match(&p.description))
                    .collect();
                // Most slices first (a complete acquisition beats an aborted one), then the
                // latest series number (a repeat is usually the good one), then UID.
                matching.sort_by(|a, b| {
                    b.1.slices()
                        .cmp(&a.1.slices())
                        .then(b.1.series_number.cmp(&a.1.series_number))
                        .then(a.0.cmp(b.0))
                });
                match matching.first() {
                    Some((key, part)) => {
                        if matching.len() > 1 {
                            sel.notes.push(format!(
                                "channel {channel}: {} candidates match /{}/; chose series {} ({:?}, {} slices): most slices, then highest series number",
                                matching.len(),
                                re.as_str(),
                                part.series_number.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                                part.description,
                                part.slices()
                            ));
                        }
                        sel.chosen.push(ChannelChoice {
                            channel,
                            part: (*key).clone(),
                            slices: part.slices(),
                        });
                    }
                    None => sel.missing.push(channel),
                }
            }
        }
        AssignBy::AcquisitionTime | AssignBy::SeriesNumber | AssignBy::TemporalPosition => {
            let mut ordered = candidates.clone();
            ordered.sort_by(|a, b| order(assign_by, a, b));
            let mut next = 0usize;
            for (key, part) in &ordered {
                if next == rules.channels.len() {
                    sel.notes.push(format!(
                        "ignored series {} ({:?}): all {} channels already assigned in {} order",
                        part.series_number
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                        part.description,
                        rules.channels.len(),
                        order_name(assign_by)
                    ));
                    continue;
                }
                if let Some(re) = &rules.channels[next]
                    && !re.is_match(&part.description)
                {
                    sel.notes.push(format!(
                        "skipped {:?} for channel {next}: does not match /{}/",
                        part.description,
                        re.as_str()
                    ));
                    continue;
                }
                sel.chosen.push(ChannelChoice {
                    channel: next,
                    part: (*key).clone(),
                    slices: part.slices(),
                });
                next += 1;
            }
            sel.missing.extend(next..rules.channels.len());
        }
    }
    sel
}

fn order(
    assign_by: AssignBy,
    a: &(&PartKey, &SeriesPart),
    b: &(&PartKey, &SeriesPart),
) -> Ordering {
    let (ka, pa) = a;
    let (kb, pb) = b;
    let primary = match assign_by {
        AssignBy::AcquisitionTime => pa.time_key().cmp(&pb.time_key()),
        AssignBy::SeriesNumber => pa.series_number.cmp(&pb.series_number),
        AssignBy::TemporalPosition => ka.temporal_position.cmp(&kb.temporal_position),
        AssignBy::Description => Ordering::Equal,
    };
    primary
        .then(pa.series_number.cmp(&pb.series_number))
        .then(ka.temporal_position.cmp(&kb.temporal_position))
        .then(ka.cmp(kb))
}

fn order_name(assign_by: AssignBy) -> &'static str {
    match assign_by {
        AssignBy::AcquisitionTime => "acquisition time",
        AssignBy::SeriesNumber => "series number",
        AssignBy::TemporalPosition => "temporal position",
        AssignBy::Description => "description",
    }
}
