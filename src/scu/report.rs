//! The outcome of a send: counts, statuses, failures, volume and time, and the small table
//! `segnode send` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::dimse::Status;

/// The outcome of sending a set of files.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Instances the peer answered with success or warning.
    pub sent: usize,
    /// Instances that failed (status, transport, unreadable file).
    pub failed: usize,
    /// Response statuses and how often each came back.
    pub statuses: BTreeMap<u16, usize>,
    /// Per-file failure reasons.
    pub failures: Vec<(PathBuf, String)>,
    /// Files under the given folders that were not DICOM, with the reason (not failures).
    pub skipped: Vec<(PathBuf, String)>,
    /// Data set bytes sent.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl SendReport {
    /// Whether every instance went through (nothing failed).
    pub fn all_sent(&self) -> bool {
        self.failed == 0
    }

    /// Record the peer's answer to one instance.
    pub(crate) fn record_status(
        &mut self,
        path: PathBuf,
        status: Status,
        comment: Option<String>,
        bytes: u64,
    ) {
        *self.statuses.entry(status.0).or_default() += 1;
        self.bytes += bytes;
        if status.is_success_or_warning() {
            self.sent += 1;
        } else {
            self.failed += 1;
            let reason = match comment {
                Some(c) => format!("peer answered {status}: {c}"),
                None => format!("peer answered {status}"),
            };
            self.failures.push((path, reason));
        }
    }

    /// Record an instance that failed before the peer answered.
    pub(crate) fn record_failure(&mut self, path: PathBuf, reason: impl Into<String>) {
        self.failed += 1;
        self.failures.push((path, reason.into()));
    }

    /// A small aligned table: files, sent, failed, skipped, MB, seconds, MB/s and one row
    /// per response status.
    pub fn summary_table(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mb = self.bytes as f64 / 1_000_000.0;
        let rate = if secs > 0.0 { mb / secs } else { 0.0 };
        let mut rows: Vec<(String, String)> = vec![
            ("files".into(), (self.sent + self.failed).to_string()),
            ("sent".into(), self.sent.to_string()),
            ("failed".into(), self.failed.to_string()),
        ];
        if !self.skipped.is_empty() {
            rows.push(("skipped (not DICOM)".into(), self.skipped.len().to_string()));
        }
        rows.push(("MB".into(), format!("{mb:.2}")));
        rows.push(("seconds".into(), format!("{secs:.2}")));
        rows.push(("MB/s".into(), format!("{rate:.2}")));
        for (code, n) in &self.statuses {
            rows.push((format!("status {}", Status(*code)), n.to_string()));
        }
        let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (label, value) in rows {
            let _ = writeln!(out, "{label:<label_width$}  {value:>value_width$}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_and_counts_statuses() {
        let mut r = SendReport::default();
        r.record_status("a".into(), Status::SUCCESS, None, 2_000_000);
        r.record_status(
            "b".into(),
            Status::OUT_OF_RESOURCES,
            Some("disk full".into()),
            0,
        );
        r.record_failure("c".into(), "cannot read");
        r.elapsed = Duration::from_secs(2);
        assert_eq!((r.sent, r.failed), (1, 2));
        assert_eq!(
            r.failures[0].1,
            "peer answered 0xA700 (refused: out of resources): disk full"
        );
        let table = r.summary_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        assert!(table.contains("MB/s") && table.contains("1.00"), "{table}");
        assert!(table.contains("status 0x0000 (success)"), "{table}");
        assert!(
            lines[0].starts_with("files") && lines[0].ends_with('3'),
            "{table}"
        );
    }
}
