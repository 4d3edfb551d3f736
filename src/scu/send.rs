//! A whole send: find the files, plan presentation contexts (grouped by SOP class and
//! transfer syntax), associate once (once per 128 contexts), C-STORE each file, release,
//! and report. Per-instance problems go in the report; the batch goes on. When the
//! association breaks (abort, closed connection, timeout), the instance in flight and all
//! that remain in that association fail with the reason.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::{Instrument, debug, info, info_span, warn};

use super::association;
use super::contexts::{MAX_CONTEXTS, ProposedContext, propose_contexts};
use super::payload::{self, Payload};
use super::store::{StoreRequest, c_store};
use super::{ScuError, ScuOptions, SendReport};
use crate::ae::Peer;
use crate::ingest::files::{FileInfo, collect_dicom_files, probe_file};
use crate::uids::UNCOMPRESSED_TRANSFER_SYNTAXES;

/// C-STORE every DICOM file under `paths` (files or folders, recursive) to `peer`.
///
/// Files in folders that are not DICOM are skipped (listed in the report); paths that do
/// not exist or named files that are not DICOM are failures. `show_progress` draws a
/// progress bar when stderr is a terminal. `Err` only when nothing could be sent at all:
/// no DICOM file found, or no association (unreachable, rejected, nothing accepted).
pub async fn send_paths(
    peer: &Peer,
    opts: &ScuOptions,
    paths: &[PathBuf],
    show_progress: bool,
) -> Result<SendReport, ScuError> {
    let started = Instant::now();
    let owned = paths.to_vec();
    let collected = tokio::task::spawn_blocking(move || collect_dicom_files(&owned))
        .await
        .map_err(|e| ScuError::NoFiles {
            detail: format!("the file scan failed: {e}"),
        })?;
    let mut report = SendReport {
        skipped: collected.skipped,
        ..SendReport::default()
    };
    for (path, reason) in collected.failed {
        warn!(path = %path.display(), %reason, "cannot send");
        report.record_failure(path, reason);
    }
    if collected.files.is_empty() && report.failed == 0 {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ScuError::NoFiles {
            detail: format!(
                "{} non-DICOM file(s) under {}",
                report.skipped.len(),
                shown.join(", ")
            ),
        });
    }
    send_all(peer, opts, collected.files, show_progress, report, started).await
}

/// C-STORE exactly these files (no folder walk; a file that is not DICOM is a failure).
/// Used by the pipeline to deliver SEGs from the outbox. An empty list is an empty report.
pub async fn send_files(
    peer: &Peer,
    opts: &ScuOptions,
    files: &[PathBuf],
) -> Result<SendReport, ScuError> {
    let started = Instant::now();
    let owned = files.to_vec();
    let probed = tokio::task::spawn_blocking(move || {
        owned
            .into_iter()
            .map(|p| (probe_file(&p), p))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ScuError::NoFiles {
        detail: format!("the file scan failed: {e}"),
    })?;
    let mut report = SendReport::default();
    let mut infos = Vec::with_capacity(probed.len());
    for (result, path) in probed {
        match result {
            Ok(info) => infos.push(info),
            Err(e) => report.record_failure(path, e.to_string()),
        }
    }
    send_all(peer, opts, infos, false, report, started).await
}

/// One association's worth of work.
struct Batch {
    contexts: Vec<ProposedContext>,
    files: Vec<FileInfo>,
}

/// Group files under the contexts that carry them, at most [`MAX_CONTEXTS`] per batch.
fn plan(files: Vec<FileInfo>) -> Vec<Batch> {
    let contexts = propose_contexts(
        files
            .iter()
            .map(|f| (f.sop_class_uid.as_str(), f.transfer_syntax.as_str())),
    );
    // The context carrying a file: its class's uncompressed one, or its own syntax's.
    let index: HashMap<(&str, &str), usize> = contexts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                (c.abstract_syntax.as_str(), c.transfer_syntaxes[0].as_str()),
                i,
            )
        })
        .collect();
    let carrier = |f: &FileInfo| -> usize {
        let class = f.sop_class_uid.as_str();
        if UNCOMPRESSED_TRANSFER_SYNTAXES.contains(&f.transfer_syntax.as_str()) {
            UNCOMPRESSED_TRANSFER_SYNTAXES
                .iter()
                .find_map(|ts| index.get(&(class, *ts)).copied())
                .expect("every uncompressed file has its class's uncompressed context")
        } else {
            index[&(class, f.transfer_syntax.as_str())]
        }
    };
    let mut batches: Vec<Batch> = contexts
        .chunks(MAX_CONTEXTS)
        .map(|chunk| Batch {
            contexts: chunk.to_vec(),
            files: Vec::new(),
        })
        .collect();
    let assignments: Vec<usize> = files.iter().map(|f| carrier(f) / MAX_CONTEXTS).collect();
    for (file, batch) in files.into_iter().zip(assignments) {
        batches[batch].files.push(file);
    }
    batches
}

async fn send_all(
    peer: &Peer,
    opts: &ScuOptions,
    files: Vec<FileInfo>,
    show_progress: bool,
    mut report: SendReport,
    started: Instant,
) -> Result<SendReport, ScuError> {
    let total = files.len() as u64;
    let progress = progress_bar(total, show_progress);
    let batches = plan(files);
    let many = batches.len() > 1;
    for (i, batch) in batches.into_iter().enumerate() {
        let span =
            info_span!("association", peer = %peer, calling_ae = %opts.calling_ae, batch = i);
        // A peer-wide failure (unreachable, rejected) on the first association fails the
        // whole send; later, or for a batch whose classes the peer refuses, it fails files.
        let fail_whole = FailWhole {
            first: i == 0,
            many,
        };
        let result = run_batch(peer, opts, batch, &mut report, &progress, fail_whole)
            .instrument(span)
            .await;
        if let Err(e) = result {
            progress.finish_and_clear();
            return Err(e);
        }
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    info!(
        peer = %peer,
        sent = report.sent,
        failed = report.failed,
        skipped = report.skipped.len(),
        bytes = report.bytes,
        seconds = report.elapsed.as_secs_f64(),
        "send finished"
    );
    Ok(report)
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// When a failed establishment fails the whole send rather than one batch's files.
#[derive(Clone, Copy)]
struct FailWhole {
    /// This is the first association of the send.
    first: bool,
    /// The send needs more than one association.
    many: bool,
}

impl FailWhole {
    fn applies(self, e: &ScuError) -> bool {
        self.first && !(self.many && matches!(e, ScuError::NoAcceptedContext { .. }))
    }
}

/// Send one batch over one association. `Err` only when the association cannot be
/// established and `fail_whole` says that means the whole send failed; otherwise every
/// file of the batch ends up in the report as sent or failed.
async fn run_batch(
    peer: &Peer,
    opts: &ScuOptions,
    batch: Batch,
    report: &mut SendReport,
    progress: &ProgressBar,
    fail_whole: FailWhole,
) -> Result<(), ScuError> {
    let mut assoc = match association::establish(peer, opts, &batch.contexts).await {
        Ok(a) => a,
        Err(e) if fail_whole.applies(&e) => return Err(e),
        Err(e) => {
            warn!(cause = %e, files = batch.files.len(), "no association: the files of this batch fail");
            for f in batch.files {
                report.record_failure(f.path, format!("not sent: {e}"));
                progress.inc(1);
            }
            return Ok(());
        }
    };
    info!(
        files = batch.files.len(),
        contexts = batch.contexts.len(),
        accepted = assoc.accepted().len(),
        "associated"
    );
    let mut files = batch.files.into_iter();
    while let Some(info) = files.next() {
        progress.inc(1);
        let ctx = match payload::choose_context(&info, assoc.accepted()) {
            Ok(c) => c.clone(),
            Err(reason) => {
                warn!(path = %info.path.display(), %reason, "instance not sent");
                report.record_failure(info.path, reason);
                continue;
            }
        };
        let payload = match load(&info, &ctx.transfer_syntax).await {
            Ok(p) => p,
            Err(reason) => {
                warn!(path = %info.path.display(), %reason, "instance not sent");
                report.record_failure(info.path, reason);
                continue;
            }
        };
        let rq = StoreRequest {
            pc_id: ctx.id,
            sop_class_uid: &info.sop_class_uid,
            sop_instance_uid: &info.sop_instance_uid,
            dataset: &payload.dataset,
        };
        let t0 = Instant::now();
        match c_store(&mut assoc, &rq).await {
            Ok(outcome) => {
                debug!(
                    path = %info.path.display(),
                    sop_instance = %info.sop_instance_uid,
                    transfer_syntax = %ctx.transfer_syntax,
                    converted = payload.converted,
                    bytes = payload.dataset.len(),
                    ms = t0.elapsed().as_millis() as u64,
                    status = %outcome.status,
                    "C-STORE answered"
                );
                if !outcome.status.is_success_or_warning() {
                    warn!(path = %info.path.display(), status = %outcome.status, comment = ?outcome.error_comment, "peer refused instance");
                }
                let bytes = payload.dataset.len() as u64;
                report.record_status(info.path, outcome.status, outcome.error_comment, bytes);
            }
            Err(e) => {
                warn!(path = %info.path.display(), cause = %e, remaining = files.len(), "association lost during C-STORE");
                report.record_failure(info.path, e.to_string());
                for rest in files {
                    report.record_failure(rest.path, format!("not sent: {e}"));
                    progress.inc(1);
                }
                assoc.abort().await;
                return Ok(());
            }
        }
    }
    if let Err(e) = assoc.release().await {
        warn!(cause = %e, "association release failed (every instance was already answered)");
    }
    Ok(())
}

async fn load(info: &FileInfo, target_ts: &str) -> Result<Payload, String> {
    let info = info.clone();
    let target = target_ts.to_string();
    tokio::task::spawn_blocking(move || payload::load(&info, &target))
        .await
        .unwrap_or_else(|e| Err(format!("reading the file failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uids::{EXPLICIT_VR_LE, JPEG_LS_LOSSLESS, MR_IMAGE_STORAGE};

    fn file(class: &str, ts: &str, n: usize) -> FileInfo {
        FileInfo {
            path: format!("{n}.dcm").into(),
            sop_class_uid: class.into(),
            sop_instance_uid: format!("1.2.{n}"),
            transfer_syntax: ts.into(),
        }
    }

    #[test]
    fn one_batch_for_few_classes() {
        let files = vec![
            file(MR_IMAGE_STORAGE, EXPLICIT_VR_LE, 1),
            file(MR_IMAGE_STORAGE, JPEG_LS_LOSSLESS, 2),
            file(MR_IMAGE_STORAGE, EXPLICIT_VR_LE, 3),
        ];
        let batches = plan(files);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].contexts.len(), 2);
        assert_eq!(batches[0].files.len(), 3);
    }

    #[test]
    fn more_than_128_contexts_split_into_batches() {
        let files: Vec<FileInfo> = (0..300)
            .map(|i| file(&format!("1.2.840.99.{i}"), EXPLICIT_VR_LE, i))
            .collect();
        let batches = plan(files);
        assert_eq!(
            batches.iter().map(|b| b.contexts.len()).collect::<Vec<_>>(),
            vec![128, 128, 44]
        );
        for b in &batches {
            for f in &b.files {
                assert!(
                    b.contexts
                        .iter()
                        .any(|c| c.abstract_syntax == f.sop_class_uid)
                );
            }
        }
        assert_eq!(batches.iter().map(|b| b.files.len()).sum::<usize>(), 300);
    }
}
