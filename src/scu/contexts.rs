//! Which presentation contexts to propose for a set of files: one per SOP class for
//! uncompressed files, one per (SOP class, other transfer syntax) with the uncompressed
//! syntaxes as fallbacks, at most 128 per association.

use std::collections::BTreeMap;

use crate::uids::{self, UNCOMPRESSED_TRANSFER_SYNTAXES};

/// At most this many presentation contexts in one association (odd ids 1..=255).
pub(crate) const MAX_CONTEXTS: usize = 128;

/// A presentation context to propose: one abstract syntax, transfer syntaxes in order of
/// preference. Its id is its position: 1, 3, 5 …
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProposedContext {
    /// SOP Class UID.
    pub abstract_syntax: String,
    /// Transfer syntax UIDs, the file's own first.
    pub transfer_syntaxes: Vec<String>,
}

/// The contexts to propose for a set of (SOP class, transfer syntax) pairs: one context
/// per SOP class for uncompressed files (Explicit VR LE, Implicit VR LE; Implicit first
/// only when no file of the class is Explicit), and one per (SOP class, other syntax)
/// with the uncompressed syntaxes as fallbacks. Sorted and deduplicated, so the plan does not depend on file order.
pub(crate) fn propose_contexts<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<ProposedContext> {
    let mut by_class: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (class, ts) in pairs {
        let list = by_class.entry(class).or_default();
        if !list.contains(&ts) {
            list.push(ts);
        }
    }
    let mut out = Vec::new();
    for (class, mut syntaxes) in by_class {
        syntaxes.sort_unstable();
        let own_uncompressed = UNCOMPRESSED_TRANSFER_SYNTAXES
            .iter()
            .copied()
            .find(|ts| syntaxes.contains(ts));
        let has_other = syntaxes
            .iter()
            .any(|ts| !UNCOMPRESSED_TRANSFER_SYNTAXES.contains(ts));
        if own_uncompressed.is_some() || !has_other {
            let first = own_uncompressed.unwrap_or(uids::EXPLICIT_VR_LE);
            out.push(context(class, first));
        }
        for ts in syntaxes
            .into_iter()
            .filter(|ts| !UNCOMPRESSED_TRANSFER_SYNTAXES.contains(ts))
        {
            out.push(context(class, ts));
        }
    }
    out
}

/// One context: `first`, then the uncompressed syntaxes not already listed.
fn context(class: &str, first: &str) -> ProposedContext {
    let mut transfer_syntaxes = vec![first.to_string()];
    for ts in UNCOMPRESSED_TRANSFER_SYNTAXES {
        if *ts != first {
            transfer_syntaxes.push((*ts).to_string());
        }
    }
    ProposedContext {
        abstract_syntax: class.to_string(),
        transfer_syntaxes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uids::{
        EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_LS_LOSSLESS, MR_IMAGE_STORAGE, SEGMENTATION_STORAGE,
    };

    #[test]
    fn uncompressed_files_share_one_context_per_class() {
        let got = propose_contexts([
            (MR_IMAGE_STORAGE, EXPLICIT_VR_LE),
            (MR_IMAGE_STORAGE, IMPLICIT_VR_LE),
            (SEGMENTATION_STORAGE, IMPLICIT_VR_LE),
        ]);
        assert_eq!(got.len(), 2);
        let mr = got
            .iter()
            .find(|c| c.abstract_syntax == MR_IMAGE_STORAGE)
            .unwrap();
        assert_eq!(mr.transfer_syntaxes, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
        let seg = got
            .iter()
            .find(|c| c.abstract_syntax == SEGMENTATION_STORAGE)
            .unwrap();
        assert_eq!(seg.transfer_syntaxes, vec![IMPLICIT_VR_LE, EXPLICIT_VR_LE]);
    }

    #[test]
    fn compressed_files_get_their_own_context_with_fallbacks() {
        let got = propose_contexts([
            (MR_IMAGE_STORAGE, JPEG_LS_LOSSLESS),
            (MR_IMAGE_STORAGE, JPEG_LS_LOSSLESS),
        ]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].transfer_syntaxes,
            vec![JPEG_LS_LOSSLESS, EXPLICIT_VR_LE, IMPLICIT_VR_LE]
        );
        let mixed = propose_contexts([
            (MR_IMAGE_STORAGE, JPEG_LS_LOSSLESS),
            (MR_IMAGE_STORAGE, EXPLICIT_VR_LE),
        ]);
        assert_eq!(mixed.len(), 2);
        assert_eq!(mixed[0].transfer_syntaxes[0], EXPLICIT_VR_LE);
        assert_eq!(mixed[1].transfer_syntaxes[0], JPEG_LS_LOSSLESS);
    }
}
