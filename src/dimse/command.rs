//! DIMSE command sets: typed values, encoded and decoded in Implicit VR Little Endian.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use super::Status;
use crate::uids::trim_uid;

/// CommandDataSetType value meaning "no data set follows" (PS3.7 E.1).
const NO_DATASET: u16 = 0x0101;
/// CommandDataSetType value we write when a data set follows (any other value means so).
const DATASET_PRESENT: u16 = 0x0000;

/// Why a command set could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("command set is not valid Implicit VR Little Endian: {0}")]
    Malformed(String),
    #[error("command set lacks {0}")]
    Missing(&'static str),
    #[error("C-STORE-RQ announces no data set")]
    StoreWithoutDataset,
}

/// The CommandField (0000,0100) values segnode knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandField {
    /// C-STORE request.
    CStoreRq,
    /// C-STORE response.
    CStoreRsp,
    /// C-ECHO request.
    CEchoRq,
    /// C-ECHO response.
    CEchoRsp,
    /// Anything else (C-FIND, C-MOVE, N-* …): answered with "unrecognized operation".
    Other(u16),
}

impl CommandField {
    fn from_u16(v: u16) -> Self {
        match v {
            0x0001 => Self::CStoreRq,
            0x8001 => Self::CStoreRsp,
            0x0030 => Self::CEchoRq,
            0x8030 => Self::CEchoRsp,
            other => Self::Other(other),
        }
    }

    fn to_u16(self) -> u16 {
        match self {
            Self::CStoreRq => 0x0001,
            Self::CStoreRsp => 0x8001,
            Self::CEchoRq => 0x0030,
            Self::CEchoRsp => 0x8030,
            Self::Other(v) => v,
        }
    }
}

/// A decoded DIMSE command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// C-ECHO-RQ.
    EchoRq { message_id: u16 },
    /// C-ECHO-RSP.
    EchoRsp { responding_to: u16, status: Status },
    /// C-STORE-RQ; a data set always follows.
    StoreRq {
        message_id: u16,
        sop_class_uid: String,
        sop_instance_uid: String,
        priority: u16,
        /// Set when the store is a sub-operation of a C-MOVE (AE title, message id).
        move_originator: Option<(String, u16)>,
    },
    /// C-STORE-RSP.
    StoreRsp {
        responding_to: u16,
        sop_class_uid: String,
        sop_instance_uid: String,
        status: Status,
        /// Free text (0000,0902) that explains a failure to the peer's operator.
        error_comment: Option<String>,
    },
    /// A command segnode does not implement. `has_dataset` tells the reader to skip one.
    Unsupported {
        field: u16,
        message_id: Option<u16>,
        sop_class_uid: Option<String>,
        has_dataset: bool,
    },
}

impl Command {
    /// Whether a data set follows this command on the wire.
    pub fn has_dataset(&self) -> bool {
        match self {
            Command::StoreRq { .. } => true,
            Command::Unsupported { has_dataset, .. } => *has_dataset,
            _ => false,
        }
    }

    /// The field, for logs.
    pub fn field(&self) -> CommandField {
        match self {
            Command::EchoRq { .. } => CommandField::CEchoRq,
            Command::EchoRsp { .. } => CommandField::CEchoRsp,
            Command::StoreRq { .. } => CommandField::CStoreRq,
            Command::StoreRsp { .. } => CommandField::CStoreRsp,
            Command::Unsupported { field, .. } => CommandField::Other(*field),
        }
    }

    /// Decode a complete command set (all Command PDV fragments concatenated).
    pub fn decode(bytes: &[u8]) -> Result<Command, DimseError> {
        // Lengths and structure first: dicom-rs allocates what an element declares.
        crate::untrusted::check_command_set(bytes)
            .map_err(|e| DimseError::Malformed(e.to_string()))?;
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .map_err(|e| DimseError::Malformed(e.to_string()))?;
        let field = read_u16(&obj, tags::COMMAND_FIELD)
            .ok_or(DimseError::Missing("CommandField (0000,0100)"))?;
        let has_dataset =
            read_u16(&obj, tags::COMMAND_DATA_SET_TYPE).is_some_and(|v| v != NO_DATASET);
        let message_id = read_u16(&obj, tags::MESSAGE_ID);
        let responding_to = read_u16(&obj, tags::MESSAGE_ID_BEING_RESPONDED_TO);
        let status = read_u16(&obj, tags::STATUS).map(Status);
        let affected_class = read_str(&obj, tags::AFFECTED_SOP_CLASS_UID);
        let affected_instance = read_str(&obj, tags::AFFECTED_SOP_INSTANCE_UID);

        let missing_message_id = DimseError::Missing("MessageID (0000,0110)");
        Ok(match CommandField::from_u16(field) {
            CommandField::CEchoRq => Command::EchoRq {
                message_id: message_id.ok_or(missing_message_id)?,
            },
            CommandField::CEchoRsp => Command::EchoRsp {
                responding_to: responding_to
                    .ok_or(DimseError::Missing("MessageIDBeingRespondedTo"))?,
                status: status.ok_or(DimseError::Missing("Status (0000,0900)"))?,
            },
            CommandField::CStoreRq => {
                if !has_dataset {
                    return Err(DimseError::StoreWithoutDataset);
                }
                let move_originator =
                    read_str(&obj, tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE).map(|ae| {
                        (
                            ae.trim().to_string(),
                            read_u16(&obj, tags::MOVE_ORIGINATOR_MESSAGE_ID).unwrap_or(0),
                        )
                    });
                Command::StoreRq {
                    message_id: message_id.ok_or(missing_message_id)?,
                    sop_class_uid: affected_class
                        .ok_or(DimseError::Missing("AffectedSOPClassUID (0000,0002)"))?,
                    sop_instance_uid: affected_instance
                        .ok_or(DimseError::Missing("AffectedSOPInstanceUID (0000,1000)"))?,
                    priority: read_u16(&obj, tags::PRIORITY).unwrap_or(0),
                    move_originator,
                }
            }
            CommandField::CStoreRsp => Command::StoreRsp {
                responding_to: responding_to
                    .ok_or(DimseError::Missing("MessageIDBeingRespondedTo"))?,
                sop_class_uid: affected_class.unwrap_or_default(),
                sop_instance_uid: affected_instance.unwrap_or_default(),
                status: status.ok_or(DimseError::Missing("Status (0000,0900)"))?,
                error_comment: read_str(&obj, tags::ERROR_COMMENT),
            },
            CommandField::Other(field) => Command::Unsupported {
                field,
                message_id,
                sop_class_uid: affected_class,
                has_dataset,
            },
        })
    }

    /// Encode as a command set with its group length, ready for Command PDVs.
    pub fn encode(&self) -> Vec<u8> {
        let mut elements: Vec<DataElement<InMemDicomObject>> = Vec::with_capacity(8);
        let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let ui = |tag: Tag, v: &str| DataElement::new(tag, VR::UI, PrimitiveValue::from(v));
        let no_dataset = us(tags::COMMAND_DATA_SET_TYPE, NO_DATASET);
        match self {
            Command::EchoRq { message_id } => {
                elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, crate::uids::VERIFICATION));
                elements.push(us(tags::COMMAND_FIELD, self.field().to_u16()));
                elements.push(us(tags::MESSAGE_ID, *message_id));
                elements.push(no_dataset);
            }
            Command::EchoRsp {
                responding_to,
                status,
            } => {
                elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, crate::uids::VERIFICATION));
                elements.push(us(tags::COMMAND_FIELD, self.field().to_u16()));
                elements.push(us(tags::MESSAGE_ID_BEING_RESPONDED_TO, *responding_to));
                elements.push(no_dataset);
                elements.push(us(tags::STATUS, status.0));
            }
            Command::StoreRq {
                message_id,
                sop_class_uid,
                sop_instance_uid,
                priority,
                move_originator,
            } => {
                elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid));
                elements.push(us(tags::COMMAND_FIELD, self.field().to_u16()));
                elements.push(us(tags::MESSAGE_ID, *message_id));
                elements.push(us(tags::PRIORITY, *priority));
                elements.push(us(tags::COMMAND_DATA_SET_TYPE, DATASET_PRESENT));
                elements.push(ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid));
                if let Some((ae, id)) = move_originator {
                    elements.push(DataElement::new(
                        tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE,
                        VR::AE,
                        PrimitiveValue::from(ae.as_str()),
                    ));
                    elements.push(us(tags::MOVE_ORIGINATOR_MESSAGE_ID, *id));
                }
            }
            Command::StoreRsp {
                responding_to,
                sop_class_uid,
                sop_instance_uid,
                status,
                error_comment,
            } => {
                elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid));
                elements.push(us(tags::COMMAND_FIELD, self.field().to_u16()));
                elements.push(us(tags::MESSAGE_ID_BEING_RESPONDED_TO, *responding_to));
                elements.push(no_dataset);
                elements.push(us(tags::STATUS, status.0));
                elements.push(ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid));
                if let Some(comment) = error_comment {
                    // LO: at most 64 characters.
                    let comment: String = comment.chars().take(64).collect();
                    elements.push(DataElement::new(
                        tags::ERROR_COMMENT,
                        VR::LO,
                        PrimitiveValue::from(comment),
                    ));
                }
            }
            Command::Unsupported {
                field,
                message_id,
                sop_class_uid,
                ..
            } => {
                // We never send an unsupported request; encode what we know for completeness.
                if let Some(uid) = sop_class_uid {
                    elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, uid));
                }
                elements.push(us(tags::COMMAND_FIELD, *field));
                if let Some(id) = message_id {
                    elements.push(us(tags::MESSAGE_ID, *id));
                }
                elements.push(no_dataset);
            }
        }
        let obj = InMemDicomObject::command_from_element_iter(elements);
        let mut out = Vec::with_capacity(160);
        obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .expect("writing a command set to memory cannot fail");
        out
    }
}

/// A general failure response to an operation segnode does not implement (PS3.7 C.5.7),
/// echoing the request's message id. The response CommandField is the request's | 0x8000.
pub fn unrecognized_operation_response(
    field: u16,
    message_id: u16,
    sop_class_uid: Option<&str>,
) -> Vec<u8> {
    let mut elements: Vec<DataElement<InMemDicomObject>> = Vec::with_capacity(5);
    if let Some(uid) = sop_class_uid {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(uid),
        ));
    }
    elements.push(DataElement::new(
        tags::COMMAND_FIELD,
        VR::US,
        PrimitiveValue::from(field | 0x8000),
    ));
    elements.push(DataElement::new(
        tags::MESSAGE_ID_BEING_RESPONDED_TO,
        VR::US,
        PrimitiveValue::from(message_id),
    ));
    elements.push(DataElement::new(
        tags::COMMAND_DATA_SET_TYPE,
        VR::US,
        PrimitiveValue::from(NO_DATASET),
    ));
    elements.push(DataElement::new(
        tags::STATUS,
        VR::US,
        PrimitiveValue::from(Status::UNRECOGNIZED_OPERATION.0),
    ));
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command set to memory cannot fail");
    out
}

fn read_u16(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

fn read_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| trim_uid(&s).to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_round_trips() {
        let rq = Command::StoreRq {
            message_id: 7,
            sop_class_uid: crate::uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: "1.2.3.4".into(),
            priority: 0,
            move_originator: Some(("ORTHANC".into(), 3)),
        };
        let bytes = rq.encode();
        assert_eq!(Command::decode(&bytes).unwrap(), rq);
        // Group length element first, and its value counts the rest of the group.
        assert_eq!(&bytes[0..4], &[0, 0, 0, 0]);
        let group_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(group_len, bytes.len() - 12);
    }

    #[test]
    fn responses_round_trip() {
        let rsp = Command::StoreRsp {
            responding_to: 9,
            sop_class_uid: crate::uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: "1.2.3".into(),
            status: Status::OUT_OF_RESOURCES,
            error_comment: Some("disk below floor".into()),
        };
        assert_eq!(Command::decode(&rsp.encode()).unwrap(), rsp);
        let echo = Command::EchoRsp {
            responding_to: 1,
            status: Status::SUCCESS,
        };
        assert_eq!(Command::decode(&echo.encode()).unwrap(), echo);
        assert!(!echo.has_dataset());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Command::decode(&[1, 2, 3]).is_err());
        assert!(Command::decode(&[]).is_err());
        let unknown = unrecognized_operation_response(0x0020, 5, None);
        match Command::decode(&unknown).unwrap() {
            Command::Unsupported { field, .. } => assert_eq!(field, 0x8020),
            other => panic!("unexpected {other:?}"),
        }
    }
}
