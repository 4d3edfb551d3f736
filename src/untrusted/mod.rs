//! Bytes that came from a peer, checked before any parser trusts them.
//!
//! dicom-rs parses recursively and allocates what an element declares before it finds out
//! whether the bytes are there. A peer can therefore crash the process with sequences
//! nested a thousand deep (stack overflow) or make it zero-fill gigabytes with one element
//! that declares 0xFFFFFFF0 bytes. So every command set and data set is first walked here,
//! iteratively and without allocating from declared lengths:
//!
//! - every declared length must fit in the bytes actually received (or, inside a sequence
//!   or item of defined length, in that container);
//! - sequences nest at most [`Limits::max_depth`] deep;
//! - a data set holds at most [`Limits::max_elements`] elements;
//! - a deflated data set is inflated as a stream, at most [`Limits::max_inflated_bytes`],
//!   and never held whole;
//! - the identifying attributes (groups up to 0x0020, everything the index and the
//!   routing rules read) must come within [`Limits::max_header_bytes`]: only that prefix is
//!   handed to dicom-rs, so a data set's pixel data is never copied to read its UIDs.
//!
//! Files: `walk` (the element walker), `source` (slices, files and inflating streams it
//! walks over).

mod source;
mod walk;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use source::DatasetSource;
use source::{FileSource, InflateSource, SliceSource};
use walk::{Encoding, Walk};

use crate::uids;

/// What a peer's data set may cost to check and parse. Defaults are documented in README
/// ("Security").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of sequences.
    pub max_depth: usize,
    /// Most data elements in one data set, nested ones included.
    pub max_elements: u64,
    /// Largest prefix holding the identifying attributes (groups 0x0000–0x0020).
    pub max_header_bytes: u64,
    /// Most bytes a deflated data set may inflate to.
    pub max_inflated_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_SEQUENCE_DEPTH,
            max_elements: 1_000_000,
            max_header_bytes: 16 * 1024 * 1024,
            max_inflated_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// For data sets this node acknowledged earlier (journal replay): they passed the
    /// checks under the limits of their day, which may have been raised since; the
    /// structural checks (lengths, nesting) still hold.
    pub fn for_replay() -> Self {
        Limits {
            max_elements: u64::MAX,
            max_inflated_bytes: u64::MAX,
            ..Limits::default()
        }
    }
}

/// The deepest sequence nesting accepted. Real objects nest five or six deep (an SR
/// content tree a little more); dicom-rs recurses once per level.
pub const MAX_SEQUENCE_DEPTH: usize = 64;

/// Why bytes from a peer were refused.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    #[error("element {tag} at byte {at} declares {declared} bytes but only {left} remain")]
    LengthBeyondData {
        tag: String,
        at: u64,
        declared: u64,
        left: u64,
    },
    #[error("data ends inside an element or sequence at byte {at}")]
    Truncated { at: u64 },
    #[error("sequences nested deeper than {limit} levels (at byte {at})")]
    TooDeep { limit: usize, at: u64 },
    #[error("more than {limit} data elements")]
    TooManyElements { limit: u64 },
    #[error("the identifying attributes take more than {limit} bytes")]
    HeaderTooLarge { limit: u64 },
    #[error("deflated data set inflates to more than {limit} bytes (a deflate bomb?)")]
    InflatedTooLarge { limit: u64 },
    #[error("deflated data set is not valid deflate data: {0}")]
    Inflate(String),
    #[error("element {tag} at byte {at} has an invalid value representation {vr:?}")]
    InvalidVr { tag: String, at: u64, vr: String },
    #[error("element {tag} at byte {at} has an undefined length, which its VR {vr} cannot have")]
    UndefinedLength { tag: String, at: u64, vr: String },
    #[error("malformed structure at byte {at}: {what}")]
    Structure { at: u64, what: &'static str },
    #[error("a command set may not contain sequences (at byte {at})")]
    SequenceInCommand { at: u64 },
    #[error("transfer syntax {0} is not one this node reads")]
    UnsupportedTransferSyntax(String),
    #[error("reading the received data set: {0}")]
    Io(#[from] std::io::Error),
}

impl UntrustedError {
    /// Whether the data set broke a configured resource limit (answered "out of
    /// resources", 0xA700) rather than being malformed (0xC000).
    pub fn is_resource_limit(&self) -> bool {
        matches!(
            self,
            UntrustedError::TooManyElements { .. }
                | UntrustedError::HeaderTooLarge { .. }
                | UntrustedError::InflatedTooLarge { .. }
                | UntrustedError::Io(_)
        )
    }

    /// At most 64 characters for a C-STORE-RSP ErrorComment (LO).
    pub fn comment(&self) -> &'static str {
        match self {
            UntrustedError::LengthBeyondData { .. } => {
                "an element declares more bytes than were sent"
            }
            UntrustedError::Truncated { .. } => "data set ends inside an element",
            UntrustedError::TooDeep { .. } => "sequences nested deeper than this node accepts",
            UntrustedError::TooManyElements { .. } => "more data elements than this node accepts",
            UntrustedError::HeaderTooLarge { .. } => "identifying attributes larger than accepted",
            UntrustedError::InflatedTooLarge { .. } => {
                "deflated data set inflates beyond the limit"
            }
            UntrustedError::Inflate(_) => "deflated data set is not valid deflate data",
            UntrustedError::InvalidVr { .. } => "data set has an invalid VR",
            UntrustedError::UndefinedLength { .. } => {
                "undefined length on a VR that cannot have it"
            }
            UntrustedError::Structure { .. } => "malformed sequence or item structure",
            UntrustedError::SequenceInCommand { .. } => "sequence in a command set",
            UntrustedError::UnsupportedTransferSyntax(_) => "transfer syntax not supported",
            UntrustedError::Io(_) => "data set could not be read back; see SCP log",
        }
    }
}

/// A data set that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The top-level elements up to the end of group 0x0020, as bytes in
    /// [`Checked::header_transfer_syntax`]: all a header parse needs.
    pub header: Vec<u8>,
    /// The transfer syntax of `header`: the received one, or Explicit VR Little Endian for
    /// a deflated data set (the header is its inflated prefix).
    pub header_transfer_syntax: &'static str,
    /// Data elements in the data set, nested ones included.
    pub elements: u64,
    /// Deepest sequence nesting seen.
    pub depth: usize,
}

/// Check a whole data set received in `transfer_syntax_uid`.
pub fn check_dataset(
    bytes: &[u8],
    transfer_syntax_uid: &str,
    limits: &Limits,
) -> Result<Checked, UntrustedError> {
    match encoding_of(transfer_syntax_uid)? {
        Received::Plain(encoding) => walk_dataset(SliceSource::new(bytes), encoding, limits),
        Received::Deflated => walk_dataset(
            InflateSource::new(bytes, limits.max_inflated_bytes),
            Encoding::ExplicitLittle,
            limits,
        ),
    }
}

/// Check a data set held in a file (a large one, spilled to disk while it arrived).
pub fn check_dataset_file(
    path: &Path,
    transfer_syntax_uid: &str,
    limits: &Limits,
) -> Result<Checked, UntrustedError> {
    let file = std::fs::File::open(path)?;
    match encoding_of(transfer_syntax_uid)? {
        Received::Plain(encoding) => walk_dataset(FileSource::new(file)?, encoding, limits),
        Received::Deflated => walk_dataset(
            InflateSource::new(
                std::io::BufReader::with_capacity(256 * 1024, file),
                limits.max_inflated_bytes,
            ),
            Encoding::ExplicitLittle,
            limits,
        ),
    }
}

/// Check a DIMSE command set (Implicit VR Little Endian, no sequences) before decoding it.
pub fn check_command_set(bytes: &[u8]) -> Result<(), UntrustedError> {
    let limits = Limits {
        max_depth: 0,
        max_elements: 1024,
        max_header_bytes: bytes.len() as u64,
        max_inflated_bytes: 0,
    };
    Walk::new(SliceSource::new(bytes), Encoding::ImplicitLittle, &limits)
        .commands_only()
        .run()
        .map(|_| ())
}

fn walk_dataset<S: DatasetSource>(
    source: S,
    encoding: Encoding,
    limits: &Limits,
) -> Result<Checked, UntrustedError> {
    let header_transfer_syntax = match encoding {
        Encoding::ImplicitLittle => uids::IMPLICIT_VR_LE,
        Encoding::ExplicitLittle => uids::EXPLICIT_VR_LE,
    };
    let walked = Walk::new(source, encoding, limits).run()?;
    Ok(Checked {
        header: walked.header,
        header_transfer_syntax,
        elements: walked.elements,
        depth: walked.max_depth,
    })
}

/// How a data set in a transfer syntax is laid out on the wire.
enum Received {
    Plain(Encoding),
    Deflated,
}

fn encoding_of(transfer_syntax_uid: &str) -> Result<Received, UntrustedError> {
    let ts = uids::trim_uid(transfer_syntax_uid);
    if ts == uids::IMPLICIT_VR_LE {
        Ok(Received::Plain(Encoding::ImplicitLittle))
    } else if ts == uids::DEFLATED_EXPLICIT_VR_LE {
        Ok(Received::Deflated)
    } else if uids::ACCEPTED_TRANSFER_SYNTAXES.contains(&ts) {
        // Every other syntax this node accepts encodes the data set as Explicit VR Little
        // Endian (the compressed ones only encapsulate the pixel data).
        Ok(Received::Plain(Encoding::ExplicitLittle))
    } else {
        Err(UntrustedError::UnsupportedTransferSyntax(ts.to_string()))
    }
}
