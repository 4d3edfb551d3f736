//! Who may associate: the called AE title must be ours, `node.ae_title` or one of
//! `node.ae_titles` (when `access.check_called_ae`),
//! and the calling AE title must be on `access.allow` (when the list is not empty),
//! connecting from the listed host when one is given.
//!
//! dicom-ul asks an [`AccessControl`] with AE titles only, so the policy is bound to the
//! peer's address per connection ([`AccessPolicy::for_peer`]). A refusal becomes an
//! A-ASSOCIATE-RJ, rejected-permanent, source service user, with the matching reason.

use std::net::IpAddr;
use std::sync::Arc;

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use tracing::warn;

use crate::config::{AccessConfig, AllowedPeer, NodeConfig};

/// The access rules of the node, shared by all connections.
#[derive(Debug)]
pub(crate) struct AccessPolicy {
    check_called_ae: bool,
    /// The node's identity: the titles a peer may call.
    node: NodeConfig,
    allow: Vec<AllowedPeer>,
}

impl AccessPolicy {
    /// Rules from the `[access]` config section and the node's titles.
    pub(crate) fn from_config(node: &NodeConfig, access: &AccessConfig) -> Self {
        Self {
            check_called_ae: access.check_called_ae,
            node: node.clone(),
            allow: access.allow.clone(),
        }
    }

    /// Whether any calling AE is accepted (no allow-list).
    pub(crate) fn allows_anyone(&self) -> bool {
        self.allow.is_empty()
    }

    /// The rules applied to one connection from `peer`.
    pub(crate) fn for_peer(self: &Arc<Self>, peer: IpAddr) -> PeerAccess {
        PeerAccess {
            policy: Arc::clone(self),
            peer: peer.to_canonical(),
            refusal: RefusalSlot::default(),
        }
    }

    fn check(&self, calling_ae: &str, called_ae: &str, peer: IpAddr) -> Result<(), Refusal> {
        if self.check_called_ae && !self.node.answers_to(called_ae) {
            return Err(Refusal::CalledAe);
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let mut listed = self
            .allow
            .iter()
            .filter(|p| p.ae_title.as_str() == calling_ae)
            .peekable();
        if listed.peek().is_none() {
            return Err(Refusal::UnknownCallingAe);
        }
        if listed.any(|p| p.host.is_none_or(|host| host.to_canonical() == peer)) {
            Ok(())
        } else {
            Err(Refusal::WrongHost)
        }
    }
}

/// Why an association request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    CalledAe,
    UnknownCallingAe,
    WrongHost,
}

/// [`AccessPolicy`] bound to the address of one connecting peer.
pub(crate) struct PeerAccess {
    policy: Arc<AccessPolicy>,
    peer: IpAddr,
    refusal: RefusalSlot,
}

/// The AE titles of a refused request, kept for the audit trail (dicom-ul's error carries
/// only the reason).
#[derive(Debug, Clone, Default)]
pub(crate) struct RefusalSlot(Arc<std::sync::OnceLock<RefusedTitles>>);

/// Who asked, and whom, in a refused association request.
#[derive(Debug, Clone)]
pub(crate) struct RefusedTitles {
    /// The calling AE title.
    pub(crate) calling_ae: String,
    /// The called AE title.
    pub(crate) called_ae: String,
}

impl RefusalSlot {
    /// The titles of the refused request, if this connection's request was refused.
    pub(crate) fn get(&self) -> Option<&RefusedTitles> {
        self.0.get()
    }
}

impl PeerAccess {
    /// Where this connection's refusal (if any) is kept.
    pub(crate) fn refusal(&self) -> RefusalSlot {
        self.refusal.clone()
    }
}

impl AccessControl for PeerAccess {
    fn check_access(
        &self,
        // dicom-ul passes `node.ae_title`; the node's other titles are the policy's to know.
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let refusal = match self
            .policy
            .check(calling_ae_title, called_ae_title, self.peer)
        {
            Ok(()) => return Ok(()),
            Err(refusal) => refusal,
        };
        let _ = self.refusal.0.set(RefusedTitles {
            calling_ae: calling_ae_title.to_string(),
            called_ae: called_ae_title.to_string(),
        });
        let (calling, called, peer) = (calling_ae_title, called_ae_title, self.peer);
        match refusal {
            Refusal::CalledAe => {
                let ours = self.policy.node.titles().join(", ");
                warn!(
                    calling_ae = calling,
                    called_ae = called,
                    our_titles = %ours,
                    "association rejected: called AE title is not ours (configure the peer to call one of {ours}, add its title to node.ae_titles, or set access.check_called_ae = false)"
                );
                Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
            }
            Refusal::UnknownCallingAe => {
                warn!(calling_ae = calling, %peer,
                    "association rejected: calling AE title is not on access.allow (add it under [[access.allow]] if it should store here)");
                Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
            }
            Refusal::WrongHost => {
                warn!(calling_ae = calling, %peer,
                    "association rejected: calling AE title is allowed only from another host (check access.allow host for it)");
                Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ae::AeTitle;

    fn policy(check_called_ae: bool, allow: &[(&str, Option<&str>)]) -> AccessPolicy {
        AccessPolicy {
            check_called_ae,
            node: NodeConfig::default(),
            allow: allow
                .iter()
                .map(|(ae, host)| AllowedPeer {
                    ae_title: AeTitle::parse(ae).unwrap(),
                    host: host.map(|h| h.parse().unwrap()),
                })
                .collect(),
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn called_ae_is_checked_only_when_configured() {
        assert_eq!(
            policy(true, &[]).check("ANY", "OTHER", LOCAL),
            Err(Refusal::CalledAe)
        );
        assert_eq!(policy(false, &[]).check("ANY", "OTHER", LOCAL), Ok(()));
        assert_eq!(policy(true, &[]).check("ANY", "SEGNODE", LOCAL), Ok(()));
    }

    #[test]
    fn the_node_answers_to_each_of_its_titles_and_no_other() {
        let mut p = policy(true, &[]);
        p.node.ae_titles = vec![
            AeTitle::parse("SEG_LEFT").unwrap(),
            AeTitle::parse("SEG_RIGHT").unwrap(),
        ];
        for called in ["SEGNODE", "SEG_LEFT", "SEG_RIGHT", "SEG_LEFT  "] {
            assert_eq!(p.check("ANY", called, LOCAL), Ok(()), "{called:?}");
        }
        for called in ["SEG_MIDDLE", "seg_left", ""] {
            assert_eq!(
                p.check("ANY", called, LOCAL),
                Err(Refusal::CalledAe),
                "{called:?}"
            );
        }
    }

    #[test]
    fn allow_list_matches_ae_and_host() {
        let p = policy(true, &[("ORTHANC", Some("127.0.0.1")), ("PACS", None)]);
        assert_eq!(p.check("ORTHANC", "SEGNODE", LOCAL), Ok(()));
        assert_eq!(
            p.check("PACS", "SEGNODE", "10.0.0.7".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            p.check("ORTHANC", "SEGNODE", "10.0.0.7".parse().unwrap()),
            Err(Refusal::WrongHost)
        );
        assert_eq!(
            p.check("STRANGER", "SEGNODE", LOCAL),
            Err(Refusal::UnknownCallingAe)
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_entries() {
        let p = Arc::new(policy(false, &[("ORTHANC", Some("127.0.0.1"))]));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let access = p.for_peer(mapped);
        assert!(
            access
                .check_access("SEGNODE", "ORTHANC", "SEGNODE", None)
                .is_ok()
        );
    }

    #[test]
    fn refusals_carry_the_standard_reasons() {
        let p = Arc::new(policy(true, &[("ORTHANC", Some("10.1.1.1"))]));
        let access = p.for_peer(LOCAL);
        assert_eq!(
            access.check_access("SEGNODE", "ORTHANC", "WRONG", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
        assert_eq!(
            access.check_access("SEGNODE", "ORTHANC", "SEGNODE", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
    }
}
