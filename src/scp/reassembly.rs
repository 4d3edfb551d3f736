//! P-DATA value (PDV) fragments back into whole DIMSE messages.
//!
//! A message is its command set, in one or more Command PDVs, then (when the command says
//! so) its data set, in one or more Data PDVs, all on one presentation context; the last
//! fragment of each carries `is_last`. Fragments of one message may share a P-DATA PDU
//! with fragments of the next. Anything else is a protocol error and ends the association.
//!
//! Memory is bounded: a command set may not exceed [`MAX_COMMAND_BYTES`]; a data set beyond
//! the configured maximum is counted and discarded, and the message is still delivered
//! (as [`Payload::TooLarge`]) so that it can be answered with a failure status.

use dicom_ul::pdu::{PDataValue, PDataValueType};

use crate::dimse::{Command, DimseError};

/// Largest command set accepted; real ones are a few hundred bytes.
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The data set that came with a message.
#[derive(Debug)]
pub(crate) enum Payload {
    /// The command announced no data set.
    None,
    /// The whole data set, byte for byte.
    Complete(Vec<u8>),
    /// The data set exceeded the limit and was discarded; `bytes` were received.
    TooLarge { bytes: u64 },
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
        bytes: Vec<u8>,
        received: u64,
        too_large: bool,
    },
}

/// Reassembles the PDVs of one association.
#[derive(Debug)]
pub(crate) struct Reassembler {
    state: State,
    max_dataset_bytes: u64,
}

impl Reassembler {
    /// A reassembler that accepts data sets up to `max_dataset_bytes`.
    pub(crate) fn new(max_dataset_bytes: u64) -> Self {
        Self {
            state: State::Idle,
            max_dataset_bytes,
        }
    }

    /// Whether the stream is between messages (nothing half received).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Take one fragment; returns a message when this fragment completes one.
    pub(crate) fn push(&mut self, pdv: PDataValue) -> Result<Option<Message>, ProtocolError> {
        let PDataValue {
            presentation_context_id: id,
            value_type,
            is_last,
            data,
        } = pdv;
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
                    mut bytes,
                    mut received,
                    mut too_large,
                },
                PDataValueType::Data,
            ) => {
                if context_id != id {
                    return Err(ProtocolError::ContextSwitch {
                        expected: context_id,
                        got: id,
                    });
                }
                received += data.len() as u64;
                if received > self.max_dataset_bytes {
                    too_large = true;
                    bytes = Vec::new();
                } else if bytes.is_empty() {
                    bytes = data;
                } else {
                    bytes.extend_from_slice(&data);
                }
                if !is_last {
                    self.state = State::Data {
                        context_id,
                        command,
                        bytes,
                        received,
                        too_large,
                    };
                    return Ok(None);
                }
                let payload = if too_large {
                    Payload::TooLarge { bytes: received }
                } else {
                    Payload::Complete(bytes)
                };
                Ok(Some(Message {
                    context_id,
                    command,
                    payload,
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
                bytes: Vec::new(),
                received: 0,
                too_large: false,
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
    use crate::uids;

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
        let mut r = Reassembler::new(1 << 20);
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
        assert!(matches!(msg.payload, Payload::Complete(ref d) if d == b"abcdefg"));
        assert!(r.is_idle());
    }

    #[test]
    fn echo_has_no_data_set() {
        let mut r = Reassembler::new(1 << 20);
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
        let mut r = Reassembler::new(5);
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
        assert!(matches!(msg.payload, Payload::TooLarge { bytes: 8 }));
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut r = Reassembler::new(1 << 20);
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Data, true, b"x")),
            Err(ProtocolError::DataWithoutCommand { context_id: 1 })
        ));
        let mut r = Reassembler::new(1 << 20);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        assert!(matches!(
            r.push(pdv(3, PDataValueType::Data, true, b"x")),
            Err(ProtocolError::ContextSwitch {
                expected: 1,
                got: 3
            })
        ));
        let mut r = Reassembler::new(1 << 20);
        r.push(pdv(1, PDataValueType::Command, true, &store_rq()))
            .unwrap();
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, true, &store_rq())),
            Err(ProtocolError::CommandDuringData { .. })
        ));
        let mut r = Reassembler::new(1 << 20);
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, true, b"garbage!")),
            Err(ProtocolError::BadCommand(_))
        ));
        let mut r = Reassembler::new(1 << 20);
        let big = vec![0u8; MAX_COMMAND_BYTES + 1];
        assert!(matches!(
            r.push(pdv(1, PDataValueType::Command, false, &big)),
            Err(ProtocolError::CommandTooLarge)
        ));
    }
}
