//! What the SCP accepts when an association is negotiated: Verification plus the storage
//! SOP classes of `config.accepted_sop_classes()`, each with exactly the transfer syntaxes
//! of [`uids::ACCEPTED_TRANSFER_SYNTAXES`] (an explicit list: without one, dicom-ul would
//! accept syntaxes this build cannot decode), our max PDU and I/O timeouts.

use dicom_ul::association::server::{AcceptAny, DefaultNegotiation, ServerAssociationOptions};
use dicom_ul::pdu::{PresentationContextNegotiated, PresentationContextResultReason};

use crate::config::Config;
use crate::uids;

/// Association options shared by every connection; the access policy is added per peer.
pub(crate) type ScpOptions = ServerAssociationOptions<'static, AcceptAny, DefaultNegotiation>;

/// Build the acceptor options from the config.
pub(crate) fn server_options(config: &Config) -> ScpOptions {
    let mut options = ServerAssociationOptions::new()
        .ae_title(config.node.ae_title.as_str().to_string())
        .max_pdu_length(config.network.max_pdu_length)
        .read_timeout(config.network.read_timeout())
        .write_timeout(config.network.write_timeout())
        .with_abstract_syntax(uids::VERIFICATION);
    for sop_class in config.accepted_sop_classes() {
        options = options.with_abstract_syntax(sop_class);
    }
    for ts in uids::ACCEPTED_TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*ts);
    }
    options
}

/// The accepted presentation context with this id, if any.
pub(crate) fn accepted_context(
    contexts: &[PresentationContextNegotiated],
    id: u8,
) -> Option<&PresentationContextNegotiated> {
    contexts
        .iter()
        .find(|pc| pc.id == id && pc.reason == PresentationContextResultReason::Acceptance)
}

/// One line per proposed context for the debug log: `id abstract ts result`.
pub(crate) fn describe_contexts(contexts: &[PresentationContextNegotiated]) -> String {
    contexts
        .iter()
        .map(|pc| {
            if pc.reason == PresentationContextResultReason::Acceptance {
                format!(
                    "#{} {} [{}] accepted",
                    pc.id, pc.abstract_syntax, pc.transfer_syntax
                )
            } else {
                format!(
                    "#{} {} rejected ({:?})",
                    pc.id, pc.abstract_syntax, pc.reason
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_context_ignores_rejected_ones() {
        let contexts = vec![
            PresentationContextNegotiated {
                id: 1,
                reason: PresentationContextResultReason::AbstractSyntaxNotSupported,
                transfer_syntax: uids::IMPLICIT_VR_LE.into(),
                abstract_syntax: "1.2.3".into(),
            },
            PresentationContextNegotiated {
                id: 3,
                reason: PresentationContextResultReason::Acceptance,
                transfer_syntax: uids::EXPLICIT_VR_LE.into(),
                abstract_syntax: uids::MR_IMAGE_STORAGE.into(),
            },
        ];
        assert!(accepted_context(&contexts, 1).is_none());
        assert_eq!(
            accepted_context(&contexts, 3).unwrap().abstract_syntax,
            uids::MR_IMAGE_STORAGE
        );
        assert!(accepted_context(&contexts, 5).is_none());
        assert!(
            describe_contexts(&contexts)
                .contains("#3 1.2.840.10008.5.1.4.1.1.4 [1.2.840.10008.1.2.1] accepted")
        );
    }
}
