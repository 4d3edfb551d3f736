//! What the walker reads from: the received bytes in memory, a spill file, or a deflated
//! stream inflated as it is read. Skipping a value never allocates: a slice moves its
//! cursor, a file seeks, an inflating stream inflates into a small scratch buffer.

use std::io::{BufReader, Read};

use flate2::read::DeflateDecoder;

use super::UntrustedError;

/// A forward-only byte stream with a position.
pub trait DatasetSource {
    /// Fill `buf` completely. `Ok(false)`: the stream ended before its first byte (a clean
    /// end between elements); ending part-way is [`UntrustedError::Truncated`].
    fn read_or_end(&mut self, buf: &mut [u8]) -> Result<bool, UntrustedError>;
    /// Step over `n` bytes; ending before that is [`UntrustedError::Truncated`].
    fn skip(&mut self, n: u64) -> Result<(), UntrustedError>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
    /// Bytes left, where the length is known in advance (not for an inflating stream).
    fn remaining(&self) -> Option<u64>;
}

/// Bytes in memory.
pub struct SliceSource<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes, at: 0 }
    }
}

impl DatasetSource for SliceSource<'_> {
    fn read_or_end(&mut self, buf: &mut [u8]) -> Result<bool, UntrustedError> {
        let left = self.bytes.len() - self.at;
        if left == 0 && !buf.is_empty() {
            return Ok(false);
        }
        if left < buf.len() {
            return Err(UntrustedError::Truncated {
                at: self.bytes.len() as u64,
            });
        }
        buf.copy_from_slice(&self.bytes[self.at..self.at + buf.len()]);
        self.at += buf.len();
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), UntrustedError> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(UntrustedError::Truncated {
                at: self.bytes.len() as u64,
            });
        }
        self.at += n as usize;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.at as u64
    }

    fn remaining(&self) -> Option<u64> {
        Some((self.bytes.len() - self.at) as u64)
    }
}

/// A data set spilled to a file.
pub struct FileSource {
    reader: BufReader<std::fs::File>,
    len: u64,
    at: u64,
}

impl FileSource {
    pub fn new(file: std::fs::File) -> Result<Self, UntrustedError> {
        let len = file.metadata()?.len();
        Ok(FileSource {
            reader: BufReader::with_capacity(256 * 1024, file),
            len,
            at: 0,
        })
    }
}

impl DatasetSource for FileSource {
    fn read_or_end(&mut self, buf: &mut [u8]) -> Result<bool, UntrustedError> {
        if self.at == self.len && !buf.is_empty() {
            return Ok(false);
        }
        if self.len - self.at < buf.len() as u64 {
            return Err(UntrustedError::Truncated { at: self.len });
        }
        self.reader.read_exact(buf)?;
        self.at += buf.len() as u64;
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), UntrustedError> {
        if n > self.len - self.at {
            return Err(UntrustedError::Truncated { at: self.len });
        }
        let offset = i64::try_from(n).map_err(|_| UntrustedError::Truncated { at: self.len })?;
        self.reader.seek_relative(offset)?;
        self.at += n;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.at
    }

    fn remaining(&self) -> Option<u64> {
        Some(self.len - self.at)
    }
}

/// A Deflated Explicit VR Little Endian data set (raw deflate, PS3.5 A.5), inflated while
/// it is walked, never more than `limit` bytes.
pub struct InflateSource<R: Read> {
    inner: DeflateDecoder<R>,
    at: u64,
    limit: u64,
    scratch: Box<[u8]>,
}

impl<R: Read> InflateSource<R> {
    pub fn new(compressed: R, limit: u64) -> Self {
        InflateSource {
            inner: DeflateDecoder::new(compressed),
            at: 0,
            limit,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    fn check_limit(&self, more: u64) -> Result<(), UntrustedError> {
        if self.at.saturating_add(more) > self.limit {
            return Err(UntrustedError::InflatedTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Read as much of `buf` as the stream holds; the count read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, UntrustedError> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(UntrustedError::Inflate(e.to_string())),
            }
        }
        self.at += done as u64;
        Ok(done)
    }
}

impl<R: Read> DatasetSource for InflateSource<R> {
    fn read_or_end(&mut self, buf: &mut [u8]) -> Result<bool, UntrustedError> {
        self.check_limit(buf.len() as u64)?;
        let got = self.fill(buf)?;
        match got {
            0 if !buf.is_empty() => Ok(false),
            n if n < buf.len() => Err(UntrustedError::Truncated { at: self.at }),
            _ => Ok(true),
        }
    }

    fn skip(&mut self, mut n: u64) -> Result<(), UntrustedError> {
        self.check_limit(n)?;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = (|| {
            while n > 0 {
                let want = n.min(scratch.len() as u64) as usize;
                let got = self.fill(&mut scratch[..want])?;
                if got < want {
                    return Err(UntrustedError::Truncated { at: self.at });
                }
                n -= got as u64;
            }
            Ok(())
        })();
        self.scratch = scratch;
        result
    }

    fn position(&self) -> u64 {
        self.at
    }

    fn remaining(&self) -> Option<u64> {
        None
    }
}
