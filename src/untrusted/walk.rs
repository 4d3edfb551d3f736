//! The element walker: one pass over a data set's elements, iterative (an explicit stack of
//! open sequences and items instead of recursion), that checks every declared length
//! against what is there before stepping over it and copies out only the prefix holding
//! the identifying attributes.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::source::DatasetSource;
use super::{Limits, UntrustedError};

/// How data elements are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR Little Endian: tag, 4-byte length; the VR comes from the dictionary.
    ImplicitLittle,
    /// Explicit VR Little Endian: tag, VR, 2- or 4-byte length.
    ExplicitLittle,
}

/// The last group of the identifying attributes the header parse reads (Study, Series and
/// SOP identity, patient, dates, and the routing attributes of `ingest::RULE_ATTRIBUTES`).
const LAST_HEADER_GROUP: u16 = 0x0020;
/// A value length meaning "until a delimiter".
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_DELIMITATION: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITATION: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// What the walk found.
#[derive(Debug)]
pub struct Walked {
    /// The top-level elements before the first one past group 0x0020.
    pub header: Vec<u8>,
    /// Data elements seen, nested ones included.
    pub elements: u64,
    /// Deepest sequence nesting seen.
    pub max_depth: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// A sequence's items follow.
    Sequence,
    /// An item's data elements follow.
    Item,
    /// Encapsulated pixel data: an offset table and fragments, each an item of bytes.
    Fragments,
}

/// One open sequence, item or fragment list.
#[derive(Debug, Clone, Copy)]
struct Open {
    container: Container,
    /// Where it ends (absolute position) when its length was defined; else a delimiter
    /// ends it.
    end: Option<u64>,
    /// Inside a UN of undefined length: Implicit VR Little Endian (PS3.5 6.2.2).
    implicit: bool,
}

/// A walk over one data set or command set.
pub struct Walk<'l, S> {
    source: S,
    encoding: Encoding,
    limits: &'l Limits,
    commands_only: bool,
    open: Vec<Open>,
    header: Vec<u8>,
    recording: bool,
    elements: u64,
    depth: usize,
    max_depth: usize,
}

impl<'l, S: DatasetSource> Walk<'l, S> {
    /// A walk over `source` under `limits`.
    pub fn new(source: S, encoding: Encoding, limits: &'l Limits) -> Self {
        Walk {
            source,
            encoding,
            limits,
            commands_only: false,
            open: Vec::new(),
            header: Vec::new(),
            recording: true,
            elements: 0,
            depth: 0,
            max_depth: 0,
        }
    }

    /// A command set: group 0000 only, no sequences.
    pub fn commands_only(mut self) -> Self {
        self.commands_only = true;
        self
    }

    /// Walk to the end.
    pub fn run(mut self) -> Result<Walked, UntrustedError> {
        loop {
            self.close_finished()?;
            let at = self.source.position();
            let mut tag = [0u8; 4];
            if !self.read(&mut tag)? {
                if !self.open.is_empty() {
                    return Err(UntrustedError::Truncated { at });
                }
                break;
            }
            let tag = (
                u16::from_le_bytes([tag[0], tag[1]]),
                u16::from_le_bytes([tag[2], tag[3]]),
            );
            if self.recording && self.open.is_empty() && tag.0 > LAST_HEADER_GROUP {
                // The identifying attributes are complete: keep what came before this tag.
                self.recording = false;
                self.header.truncate(at as usize);
            }
            match tag {
                ITEM => self.item(at)?,
                ITEM_DELIMITATION => self.delimiter(at, Container::Item)?,
                SEQUENCE_DELIMITATION => self.delimiter(at, Container::Sequence)?,
                (0xFFFE, _) => {
                    return Err(UntrustedError::Structure {
                        at,
                        what: "unknown item tag (FFFE,xxxx)",
                    });
                }
                _ => self.element(tag, at)?,
            }
        }
        Ok(Walked {
            header: self.header,
            elements: self.elements,
            max_depth: self.max_depth,
        })
    }

    /// Pop the containers whose defined length is used up.
    fn close_finished(&mut self) -> Result<(), UntrustedError> {
        let at = self.source.position();
        while let Some(top) = self.open.last() {
            match top.end {
                Some(end) if at == end => self.pop(),
                Some(end) if at > end => {
                    return Err(UntrustedError::Structure {
                        at,
                        what: "an element runs past the end of its sequence or item",
                    });
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn pop(&mut self) {
        if let Some(closed) = self.open.pop()
            && closed.container != Container::Item
        {
            self.depth -= 1;
        }
    }

    /// An item: a sequence's next item, or a fragment of encapsulated pixel data.
    fn item(&mut self, at: u64) -> Result<(), UntrustedError> {
        let len = self.read_u32()?;
        let Some(parent) = self.open.last().copied() else {
            return Err(UntrustedError::Structure {
                at,
                what: "item outside a sequence",
            });
        };
        match parent.container {
            Container::Sequence => {
                self.count_element()?;
                let end = if len == UNDEFINED_LENGTH {
                    None
                } else {
                    self.check_fits("(FFFE,E000)", at, u64::from(len))?;
                    Some(self.source.position() + u64::from(len))
                };
                self.open.push(Open {
                    container: Container::Item,
                    end,
                    implicit: parent.implicit,
                });
                Ok(())
            }
            Container::Fragments => {
                if len == UNDEFINED_LENGTH {
                    return Err(UntrustedError::Structure {
                        at,
                        what: "pixel data fragment of undefined length",
                    });
                }
                self.count_element()?;
                self.check_fits("(FFFE,E000)", at, u64::from(len))?;
                self.take(u64::from(len))
            }
            Container::Item => Err(UntrustedError::Structure {
                at,
                what: "item directly inside an item",
            }),
        }
    }

    /// An item or sequence delimiter: it must close an open container of undefined length.
    fn delimiter(&mut self, at: u64, closes: Container) -> Result<(), UntrustedError> {
        let _len = self.read_u32()?;
        let fits = self.open.last().is_some_and(|top| {
            top.end.is_none()
                && match closes {
                    Container::Item => top.container == Container::Item,
                    _ => matches!(top.container, Container::Sequence | Container::Fragments),
                }
        });
        if !fits {
            return Err(UntrustedError::Structure {
                at,
                what: "delimiter without an open item or sequence of undefined length",
            });
        }
        self.pop();
        Ok(())
    }

    /// A data element at the top level or inside an item.
    fn element(&mut self, tag: (u16, u16), at: u64) -> Result<(), UntrustedError> {
        if self
            .open
            .last()
            .is_some_and(|top| top.container != Container::Item)
        {
            return Err(UntrustedError::Structure {
                at,
                what: "data element directly inside a sequence (items expected)",
            });
        }
        if self.commands_only && tag.0 != 0x0000 {
            return Err(UntrustedError::Structure {
                at,
                what: "command set element outside group 0000",
            });
        }
        self.count_element()?;
        let implicit = self
            .open
            .last()
            .map_or(self.encoding == Encoding::ImplicitLittle, |top| {
                top.implicit || self.encoding == Encoding::ImplicitLittle
            });
        let (vr, len) = if implicit {
            let len = self.read_u32()?;
            (dictionary_vr(tag), len)
        } else {
            let mut vr = [0u8; 2];
            self.read_exact(&mut vr)?;
            let Some(vr) = VR::from_binary(vr) else {
                return Err(UntrustedError::InvalidVr {
                    tag: show(tag),
                    at,
                    vr: String::from_utf8_lossy(&vr).into_owned(),
                });
            };
            let len = if has_long_length(vr) {
                let mut reserved = [0u8; 2];
                self.read_exact(&mut reserved)?;
                self.read_u32()?
            } else {
                let mut short = [0u8; 2];
                self.read_exact(&mut short)?;
                u32::from(u16::from_le_bytes(short))
            };
            (Some(vr), len)
        };

        if len == UNDEFINED_LENGTH {
            let container = match vr {
                Some(VR::OB | VR::OW) if tag == PIXEL_DATA => Container::Fragments,
                // Implicit VR: an element of undefined length not known as pixel data is a
                // sequence; so is a UN of undefined length, encoded implicitly inside.
                Some(VR::SQ | VR::UN) | None => Container::Sequence,
                Some(other) => {
                    return Err(UntrustedError::UndefinedLength {
                        tag: show(tag),
                        at,
                        vr: other.to_string().to_string(),
                    });
                }
            };
            let inner_implicit = implicit || vr == Some(VR::UN);
            return self.open_container(container, None, inner_implicit, at);
        }
        let len = u64::from(len);
        self.check_fits(&show(tag), at, len)?;
        if vr == Some(VR::SQ) {
            let end = self.source.position() + len;
            return self.open_container(Container::Sequence, Some(end), implicit, at);
        }
        self.take(len)
    }

    fn open_container(
        &mut self,
        container: Container,
        end: Option<u64>,
        implicit: bool,
        at: u64,
    ) -> Result<(), UntrustedError> {
        if self.commands_only {
            return Err(UntrustedError::SequenceInCommand { at });
        }
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(UntrustedError::TooDeep {
                limit: self.limits.max_depth,
                at,
            });
        }
        self.max_depth = self.max_depth.max(self.depth);
        self.open.push(Open {
            container,
            end,
            implicit,
        });
        Ok(())
    }

    fn count_element(&mut self) -> Result<(), UntrustedError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(UntrustedError::TooManyElements {
                limit: self.limits.max_elements,
            });
        }
        Ok(())
    }

    /// A declared length must fit in what is left: of the data (where known) and of every
    /// enclosing container of defined length (the innermost is the tightest).
    fn check_fits(&self, tag: &str, at: u64, len: u64) -> Result<(), UntrustedError> {
        let pos = self.source.position();
        let in_container = self
            .open
            .iter()
            .rev()
            .find_map(|o| o.end)
            .map(|end| end.saturating_sub(pos));
        let left = match (self.source.remaining(), in_container) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match left {
            Some(left) if len > left => Err(UntrustedError::LengthBeyondData {
                tag: tag.to_string(),
                at,
                declared: len,
                left,
            }),
            _ => Ok(()),
        }
    }

    /// Step over (or, in the header, copy) a value of `len` bytes already checked to fit.
    fn take(&mut self, len: u64) -> Result<(), UntrustedError> {
        if !self.recording {
            return self.source.skip(len);
        }
        let start = self.header.len();
        self.grow_header(len)?;
        let buf = &mut self.header[start..];
        if !buf.is_empty() && !self.source.read_or_end(buf)? {
            return Err(UntrustedError::Truncated {
                at: self.source.position(),
            });
        }
        Ok(())
    }

    fn grow_header(&mut self, more: u64) -> Result<(), UntrustedError> {
        let limit = self.limits.max_header_bytes;
        let new_len = (self.header.len() as u64).saturating_add(more);
        if new_len > limit {
            return Err(UntrustedError::HeaderTooLarge { limit });
        }
        self.header.resize(new_len as usize, 0);
        Ok(())
    }

    /// Read a small fixed part (tag, VR, length); `Ok(false)` at a clean end of the data.
    fn read(&mut self, buf: &mut [u8]) -> Result<bool, UntrustedError> {
        if !self.source.read_or_end(buf)? {
            return Ok(false);
        }
        if self.recording {
            let start = self.header.len();
            self.grow_header(buf.len() as u64)?;
            self.header[start..].copy_from_slice(buf);
        }
        Ok(true)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), UntrustedError> {
        if !self.read(buf)? {
            return Err(UntrustedError::Truncated {
                at: self.source.position(),
            });
        }
        Ok(())
    }

    fn read_u32(&mut self) -> Result<u32, UntrustedError> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// Value representations with a 4-byte length in Explicit VR (PS3.5 7.1.2).
fn has_long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// The VR the standard dictionary gives a tag, for Implicit VR; `None` when unknown.
fn dictionary_vr(tag: (u16, u16)) -> Option<VR> {
    match StandardDataDictionary.by_tag(Tag(tag.0, tag.1))?.vr() {
        VirtualVr::Exact(vr) => Some(vr),
        VirtualVr::Xs => Some(VR::US),
        VirtualVr::Ox | VirtualVr::Px | VirtualVr::Lt => Some(VR::OW),
        _ => Some(VR::UN),
    }
}

fn show(tag: (u16, u16)) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}
