//! What the admin side may ask of the running pipelines, as messages to the assembler
//! task (which owns the state machine): a view of the studies collecting and the job
//! queue, forcing a study complete, and issuing a job again. Each request waits a bounded
//! time for its answer, so a busy or stopped node answers with an error, never a hang.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::pipeline::assembler::{CollectingStudy, OperatorError};

/// Requests waiting for the assembler at most.
pub const CONTROL_QUEUE_CAPACITY: usize = 16;
/// How long a request waits for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A request to the assembler task.
#[derive(Debug)]
pub enum Control {
    /// Describe the studies collecting and the queue.
    Inspect(oneshot::Sender<AssemblyView>),
    /// Force a collecting study complete under its pipelines' force policies.
    Force {
        /// Study Instance UID.
        study_uid: String,
        /// What each pipeline did.
        reply: oneshot::Sender<Result<Vec<ForceResult>, OperatorError>>,
    },
    /// Issue a job again for a study the assembler still holds.
    Rerun {
        /// Pipeline name.
        pipeline: String,
        /// Study Instance UID.
        study_uid: String,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
}

/// The assembler's state as an operator sees it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AssemblyView {
    /// Studies still collecting, oldest first.
    pub studies: Vec<CollectingStudy>,
    /// Studies collecting per pipeline (every enabled pipeline listed).
    pub collecting: Vec<(String, usize)>,
    /// Jobs decided and not yet started.
    pub queued_jobs: usize,
}

/// What forcing did in one pipeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForceResult {
    /// Pipeline name.
    pub pipeline: String,
    /// A job was queued (else the study was given up).
    pub job_queued: bool,
    /// Why it was given up, when it was.
    pub reason: Option<String>,
}

/// Why a request to the pipelines got no answer, or a refusal.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no pipelines run on this node (pipelines.enabled is empty)")]
    NoPipelines,
    #[error("the pipelines are stopping; try again after the node restarted")]
    Stopped,
    #[error("the assembler did not answer within {0:?} (overloaded?); try again")]
    Busy(Duration),
    #[error(transparent)]
    Refused(#[from] OperatorError),
}

/// The admin side's handle on the pipelines (cheap to clone).
#[derive(Debug, Clone)]
pub struct PipelineControl {
    tx: Option<mpsc::Sender<Control>>,
}

impl PipelineControl {
    /// A handle and the receiver the assembler task reads.
    pub fn channel() -> (PipelineControl, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE_CAPACITY);
        (PipelineControl { tx: Some(tx) }, rx)
    }

    /// A handle for a node without pipelines: every request answers [`ControlError::NoPipelines`].
    pub fn none() -> PipelineControl {
        PipelineControl { tx: None }
    }

    /// Whether pipelines run.
    pub fn has_pipelines(&self) -> bool {
        self.tx.is_some()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, ControlError> {
        let tx = self.tx.as_ref().ok_or(ControlError::NoPipelines)?;
        let (reply, answer) = oneshot::channel();
        let asked = async {
            tx.send(make(reply))
                .await
                .map_err(|_| ControlError::Stopped)?;
            answer.await.map_err(|_| ControlError::Stopped)
        };
        tokio::time::timeout(ANSWER_WITHIN, asked)
            .await
            .map_err(|_| ControlError::Busy(ANSWER_WITHIN))?
    }

    /// The studies collecting and the queue.
    pub async fn inspect(&self) -> Result<AssemblyView, ControlError> {
        self.ask(Control::Inspect).await
    }

    /// Force `study_uid` complete.
    pub async fn force(&self, study_uid: &str) -> Result<Vec<ForceResult>, ControlError> {
        let study_uid = study_uid.to_string();
        Ok(self
            .ask(|reply| Control::Force { study_uid, reply })
            .await??)
    }

    /// Issue a job again for `study_uid` in `pipeline`.
    pub async fn rerun(&self, pipeline: &str, study_uid: &str) -> Result<(), ControlError> {
        let (pipeline, study_uid) = (pipeline.to_string(), study_uid.to_string());
        Ok(self
            .ask(|reply| Control::Rerun {
                pipeline,
                study_uid,
                reply,
            })
            .await??)
    }
}
