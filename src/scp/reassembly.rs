//! P-DATA value (PDV) fragments back into whole DIMSE messages.
//!
//! A message is its command set, in one or more Command PDVs, then (when the command says
//! so) its data set, in one or more Data PDVs, all on one presentation context; the last
//! fragment of each carries `is_last`. Fragments of one message may share a P-DATA PDU
//! with fragments of the next. Anything else is a protocol error and ends the association.
//!
//! Memory is bounded: a command set may not exceed [`MAX_COMMAND_BYTES`]; a data set is
//! held in memory only as far as the node's memory budget allows and is spilled to disk
//! beyond (`body.rs`); one beyond the configured maximum is counted and discarded, and the
//! message is still delivered (as [`Received::Discarded`]) so that it can be answered with
//! a failure status.

use std::time::Instant;

use dicom_ul::pdu::{PDataValue, PDataValueType};

use super::body::{Body, BodyLimits, Received};
use crate::dimse::{Command, DimseError};

/// Largest command set accepted; real ones are a few hundred bytes.
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The data set that came with a message.
#[derive(Debug)]
pub(crate) enum Payload {
    /// The command announced no data set.
    None,
    /// The data set, whole or discarded.
    Dataset(Received),
}

/// One whole DIMSE message.
#[derive(Debug)]
pub(crate) struct Message {
    /// Presentation context the message came on.
    pub(crate) context_id: u8,
    /// The decoded command.
    pub(crate) command: Command,
    /// Its data set.
    pub(crate) payload: Payload,
}

/// Why the PDV stream does not form valid DIMSE messages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("data set fragment on context {context_id} without a preceding command")]
    DataWithoutCommand { context_id: u8 },
    #[error(
        "command fragment on context {context_id} while the data set of the previous command is incomplete"
    )]
    CommandDuringData { context_id: u8 },
    #[error("fragment on context {got} in the middle of a message on context {expected}")]
    ContextSwitch { expected: u8, got: u8 },
    #[error("command set larger than {MAX_COMMAND_BYTES} bytes")]
    CommandTooLarge,
    #[error("undecodable command set: {0}")]
    BadCommand(#[from] DimseError),
}

#[derive(Debug)]
enum State {
    Idle,
    Command {
        context_id: u8,
        bytes: Vec<u8>,
    },
    Data {
        context_id: u8,
        command: Command,
        body: Body,
    },
}

/// Reassembles the PDVs of one association.
pub(crate) struct Reassembler {
    state: State,
    limits: BodyLimits,
    /// When the message being received began (its first fragment).
    started: Option<Instant>,
}

impl Reassembler {
    /// A reassembler whose data sets live within `limits`.
    pub(crate) fn new(limits: BodyLimits) -> Self {
        Self {
            state: State::Idle,
            limits,
            started: None,
        }
    }

    /// Whether the stream is between messages (nothing half received).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// When the message now half received began; `None` between messages.
    pub(crate) fn message_started(&self) -> Option<Instant> {
        if self.is_idle() { None } else { self.started }
    }

    /// Take one fragment; returns a message when this fragment completes one.
    pub(crate) fn push(&mut self, pdv: PDataValue) -> Result<Option<Message>, ProtocolError> {
        let PDataValue {
            presentation_context_id: id,
            value_type,
            is_last,
            data,
        } = pdv;
        if self.is_idle() {
            self.started = Some(Instant::now());
        }
        match (std::mem::replace(&mut self.state, State::Idle), value_type) {
            (State::Idle, PDataValueType::Command) => {
                self.command_fragment(id, Vec::new(), data, is_last)
            }
            (State::Idle, PDataValueType::Data) => {
                Err(ProtocolError::DataWithoutCommand { context_id: id })
            }
            (State::Command { context_id, bytes }, PDataValueType::Command) => {
                if context_id != id {
                    return Err(ProtocolError::ContextSwitch {
                        expected: context_id,
                        got: id,
                    });
                }
                self.command_fragment(id, bytes, data, is_last)
            }
            (State::Command { context_id, .. }, PDataValueType::Data) => {
                Err(ProtocolError::DataWithoutCommand { context_id })
            }
            (State::Data { .. }, PDataValueType::Command) => {
                Err(ProtocolError::CommandDuringData { context_id: id })
            }
            (
                State::Data {
                    context_id,
                    command,
                    mut body,
                },
                PDataValueType::Data,
            ) => {
                if context_id != id {
                    return Err(ProtocolError::ContextSwitch {
                        expected: context_id,
                        got: id,
                    });
                }
                body.push(data, &self.limits);
                if !is_last {
                    self.state = State::Data {
                        context_id,
                        command,
                        body,
                    };
                    return Ok(None);
                }
                Ok(Some(Message {
                    context_id,
                    command,
                    payload: Payload::Dataset(body.finish(&self.limits)),
                }))
            }
        }
    }

    fn command_fragment(
        &mut self,
        context_id: u8,
        mut bytes: Vec<u8>,
        data: Vec<u8>,
        is_last: bool,
    ) -> Result<Option<Message>, ProtocolError> {
        if bytes.len() + data.len() > MAX_COMMAND_BYTES {
            return Err(ProtocolError::CommandTooLarge);
        }
        bytes.extend_from_slice(&data);
        if !is_last {
            self.state = State::Command { context_id, bytes };
            return Ok(None);
        }
        let command = Command::decode(&bytes)?;
        if command.has_dataset() {
            self.state = State::Data {
                context_id,
                command,
                body: Body::new(&self.limits),
            };
            Ok(None)
        } else {
            Ok(Some(Message {
                context_id,
                command,
                payload: Payload::None,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scp::budget::MemoryBudget;
    use crate::spool::Dataset;
    use crate::uids;

    /// A reassembler over a throw-away spool; `budget` and `spill_above` in bytes.
    fn reassembler(max: u64, budget: u64, spill_above: u64) -> (Reassembler, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::config::StorageConfig {
            min_free_disk_mb: 0,
            journal_segment_mb: 0,
            ..Default::default()
        };
        let spool = std::sync::Arc::new(crate::spool::Spool::open(dir.path(), &storage).unwrap());
        let limits = BodyLimits {
            budget: MemoryBudget::new(budget),
            spool,
            spill_above,
            max_bytes: max,
        };
        (Reassembler::new(limits), dir)
    }

    fn complete(payload: &Payload) -> Vec<u8> {
        match payload {
            Payload::Dataset(Received::Complete {
                dataset: Dataset::Memory(bytes),
                ..
            }) => bytes.clone(),
            Payload::Dataset(Received::Complete {
                dataset: Dataset::Spilled(file),
                ..
            }) => std::fs::read(file.path()).unwrap(),
            other => panic!("not complete: {other:?}"),
        }
    }

    fn pdv(id: u8, value_type: PDataValueType, is_last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: id,
            value_type,
            is_last,
            data: data.to_vec(),
        }
    }

    fn store_rq() -> Vec<u8> {
        Command::StoreRq {
            message_id: 42,
            sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: "1.2.3".into(),
            priority: 0,
            move_originator: None,
        }
        .encode()
    }

    #[test]
    fn command_and_data_spanning_many_fragments() {
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        let cmd = store_rq();
        let (a, b) = cmd.split_at(10);
        assert!(
            r.push(pdv(1, PDataValueType::Command, false, a))
                .unwrap()
                .is_none()
        );
        assert!(
            r.push(pdv(1, PDataValueType::Command, true, b))
                .unwrap()
                .is_none()
        );
        assert!(!r.is_idle());
        assert!(
            r.push(pdv(1, PDataValueType::Data, false, b"abc"))
                .unwrap()
                .is_none()
        );
        assert!(
            r.push(pdv(1, PDataValueType::Data, false, b"def"))
                .unwrap()
                .is_none()
        );
        let msg = r
            .push(pdv(1, PDataValueType::Data, true, b"g"))
            .unwrap()
            .unwrap();
        assert_eq!(msg.context_id, 1);
        assert!(matches!(
            msg.command,
            Command::StoreRq { message_id: 42, .. }
        ));
        assert_eq!(complete(&msg.payload), b"abcdefg");
        assert!(r.is_idle());
    }

    #[test]
    fn echo_has_no_data_set() {
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        let msg = r
            .push(pdv(
                3,
                PDataValueType::Command,
                true,
                &Command::EchoRq { message_id: 7 }.encode(),
            ))
            .unwrap();
        let msg = msg.unwrap();
        assert!(matches!(msg.command, Command::EchoRq { message_id: 7 }));
        assert!(matches!(msg.payload, Payload::None));
    }

    #[test]
    fn oversized_data_set_is_dropped_but_answered() {
        let (mut r, _dir) = reassembler(5, 1 << 20, 1 << 20);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        assert!(
            r.push(pdv(1, PDataValueType::Data, false, b"1234"))
                .unwrap()
                .is_none()
        );
        let msg = r
            .push(pdv(1, PDataValueType::Data, true, b"5678"))
            .unwrap()
            .unwrap();
        assert!(matches!(
            msg.payload,
            Payload::Dataset(Received::Discarded { bytes: 8, .. })
        ));
    }

    #[test]
    fn protocol_violations_are_errors() {
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Data, true, b"x")),
            Err(ProtocolError::DataWithoutCommand { context_id: 1 })
        ));
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        assert!(matches!(
            r.push(pdv(3, PDataValueType::Data, true, b"x")),
            Err(ProtocolError::ContextSwitch {
                expected: 1,
                got: 3
            })
        ));
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, true, &store_rq())),
            Err(ProtocolError::CommandDuringData { .. })
        ));
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, true, b"garbage!")),
            Err(ProtocolError::BadCommand(_))
        ));
        let (mut r, _dir) = reassembler(1 << 20, 1 << 20, 1 << 20);
        let big = vec![0u8; MAX_COMMAND_BYTES + 1];
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, false, &big)),
            Err(ProtocolError::CommandTooLarge)
        ));
    }

    #[test]
    fn data_sets_spill_past_the_threshold_or_the_budget_and_read_back_whole() {
        // Past the per-data-set threshold.
        let (mut r, dir) = reassembler(1 << 20, 1 << 20, 10);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        r.push(pdv(1, PDataValueType::Data, false, b"0123456"))
            .unwrap();
        let msg = r
            .push(pdv(1, PDataValueType::Data, true, b"789abcdef"))
            .unwrap()
            .unwrap();
        assert!(matches!(
            msg.payload,
            Payload::Dataset(Received::Complete {
                dataset: Dataset::Spilled(_),
                ..
            })
        ));
        assert_eq!(complete(&msg.payload), b"0123456789abcdef");
        drop(msg);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        // A budget of 8 bytes held by another data set: the next one spills at once.
        let (mut r, _dir) = reassembler(1 << 20, 8, 1 << 20);
        let mut hog = crate::scp::budget::Lease::new(&r.limits.budget);
        assert!(hog.grow_to(8));
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        let msg = r
            .push(pdv(1, PDataValueType::Data, true, b"abc"))
            .unwrap()
            .unwrap();
        assert!(matches!(
            msg.payload,
            Payload::Dataset(Received::Complete {
                dataset: Dataset::Spilled(_),
                ..
            })
        ));
        assert_eq!(r.limits.budget.in_use(), 8);
    }

    #[test]
    fn memory_held_never_exceeds_the_budget() {
        let (mut r, _dir) = reassembler(1 << 30, 64 * 1024, 1 << 30);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        let chunk = vec![5u8; 16 * 1024];
        for _ in 0..64 {
            r.push(pdv(1, PDataValueType::Data, false, &chunk)).unwrap();
            assert!(r.limits.budget.in_use() <= 64 * 1024);
        }
        let msg = r
            .push(pdv(1, PDataValueType::Data, true, &chunk))
            .unwrap()
            .unwrap();
        assert_eq!(complete(&msg.payload).len(), 65 * 16 * 1024);
    }

    /// One spool for every proptest case (opening one costs fsyncs).
    fn shared_limits() -> BodyLimits {
        static SPOOL: std::sync::OnceLock<(
            tempfile::TempDir,
            std::sync::Arc<crate::spool::Spool>,
        )> = std::sync::OnceLock::new();
        let (_, spool) = SPOOL.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let storage = crate::config::StorageConfig {
                min_free_disk_mb: 0,
                journal_segment_mb: 0,
                ..Default::default()
            };
            let spool = crate::spool::Spool::open(dir.path(), &storage).unwrap();
            (dir, std::sync::Arc::new(spool))
        });
        BodyLimits {
            budget: MemoryBudget::new(1024),
            spool: std::sync::Arc::clone(spool),
            spill_above: 2048,
            max_bytes: 4096,
        }
    }

    proptest::proptest! {
        /// Random PDV streams: the reassembler answers each fragment (a message, nothing
        /// yet, or a protocol error), never panics, and the memory its data sets hold stays
        /// within the budget.
        #[test]
        fn random_pdv_streams_stay_within_the_budget(
            pdvs in proptest::collection::vec(
                (1u8..4, proptest::bool::ANY, proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
                1..40,
            )
        ) {
            let limits = shared_limits();
            let mut r = Reassembler::new(limits.clone());
            let mut held = Vec::new();
            for (id, is_command, is_last, data) in pdvs {
                let value_type = if is_command { PDataValueType::Command } else { PDataValueType::Data };
                let data = if is_command && data.len() % 3 == 0 { store_rq() } else { data };
                match r.push(pdv(id, value_type, is_last, &data)) {
                    Ok(Some(message)) => held.push(message),
                    Ok(None) => {}
                    Err(_) => r = Reassembler::new(limits.clone()),
                }
                proptest::prop_assert!(limits.budget.in_use() <= 1024);
            }
        }
    }
}
