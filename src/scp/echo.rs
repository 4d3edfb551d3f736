//! C-ECHO (Verification Service Class, PS3.4 A): the peer asks whether we are alive and
//! speaking DICOM; we answer with its message id and success.

use dicom_ul::pdu::PresentationContextNegotiated;

use crate::dimse::{Command, Status};
use crate::uids;

/// The response to C-ECHO-RQ `message_id` received on `context`. An echo on a context
/// negotiated for another SOP class is answered "SOP class not supported".
pub(crate) fn respond(message_id: u16, context: &PresentationContextNegotiated) -> Command {
    let status = if context.abstract_syntax == uids::VERIFICATION {
        Status::SUCCESS
    } else {
        Status::SOP_CLASS_NOT_SUPPORTED
    };
    Command::EchoRsp {
        responding_to: message_id,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::PresentationContextResultReason;

    fn context(abstract_syntax: &str) -> PresentationContextNegotiated {
        PresentationContextNegotiated {
            id: 1,
            reason: PresentationContextResultReason::Acceptance,
            transfer_syntax: uids::IMPLICIT_VR_LE.into(),
            abstract_syntax: abstract_syntax.into(),
        }
    }

    #[test]
    fn echo_answers_its_own_message_id() {
        assert_eq!(
            respond(9, &context(uids::VERIFICATION)),
            Command::EchoRsp {
                responding_to: 9,
                status: Status::SUCCESS
            }
        );
        assert_eq!(
            respond(2, &context(uids::MR_IMAGE_STORAGE)),
            Command::EchoRsp {
                responding_to: 2,
                status: Status::SOP_CLASS_NOT_SUPPORTED
            }
        );
    }
}
