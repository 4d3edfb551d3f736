//! A plain-text listing of what the spool holds, for `segnode status`.

use std::fmt::Write as _;
use std::path::Path;

use super::{JobState, Spool, SpoolError};

/// Studies with their series and instance counts, jobs and SEG deliveries (destination,
/// state, attempts, last error), as an aligned table.
pub fn status_report(data_dir: &Path) -> Result<String, SpoolError> {
    let spool = Spool::open_existing(data_dir)?;
    let counts = spool.counts()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spool {}: {} studies, {} series, {} instances",
        data_dir.display(),
        counts.studies,
        counts.series,
        counts.instances
    );
    let unfiled = spool.unfiled()?;
    if unfiled > 0 {
        let _ = writeln!(
            out,
            "journal: {unfiled} acknowledged instances not yet filed (a running node files them \
             within milliseconds, a stopped one at its next start)"
        );
    }
    for study in spool.studies()? {
        let _ = writeln!(
            out,
            "study {}  patient {}  {} instances",
            study.study_uid, study.patient_id, study.instances
        );
        for s in spool.series_of_study(&study.study_uid)? {
            let number = s
                .series_number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:>4}  {:<4} {:<32} {:>5}  {}",
                number, s.modality, s.series_description, s.instances, s.series_uid
            );
        }
        for job in spool.jobs().of_study(&study.study_uid)? {
            let detail = match job.state {
                JobState::Done => format!(
                    "SEG {}  findings {}",
                    job.seg_sop_instance_uid.unwrap_or_default(),
                    job.findings.unwrap_or_default()
                ),
                JobState::Failed => format!("error: {}", job.error.unwrap_or_default()),
                JobState::Running => String::new(),
            };
            let _ = writeln!(
                out,
                "  job {} {} {} ({}): {}",
                job.id, job.pipeline, job.state, job.trigger, detail
            );
        }
        for d in spool.outbox().of_study(&study.study_uid)? {
            let error = d
                .last_error
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  outbox {} -> {} {} after {} attempt(s) (job {}, {} {}){}",
                d.id,
                d.destination,
                d.state,
                d.attempts,
                d.job_id,
                d.kind,
                d.sop_instance_uid,
                error
            );
        }
    }
    Ok(out)
}
