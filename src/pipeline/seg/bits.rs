//! Packing and unpacking of 1-bit segmentation pixel data (PS3.5 8.1.1, PS3.3 C.8.20.2).
//!
//! A BINARY SEG stores all its frames as ONE continuous bit stream: pixel `i` of the stream
//! (frames one after the other, each frame row-major) is bit `i % 8`, least significant
//! first, of byte `i / 8`. Frames are not padded, so a frame whose rows × columns is not a
//! multiple of 8 begins in the middle of a byte; only the whole value is padded, with zero
//! bits, to an even number of bytes. dicom-pixeldata cannot decode such data (it truncates
//! frames that straddle bytes), which is why segnode packs and unpacks it itself.

use ndarray::Array2;

/// The packed stream is shorter than the frames it is said to hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pixel data holds {available} bytes but the frames need {needed}")]
pub struct Truncated {
    /// Bytes needed to hold the requested pixels.
    pub needed: usize,
    /// Bytes present.
    pub available: usize,
}

/// Byte length of the Pixel Data value for `total_pixels` 1-bit pixels, including the
/// padding to an even length.
pub fn packed_len(total_pixels: usize) -> usize {
    let bytes = total_pixels.div_ceil(8);
    bytes + (bytes & 1)
}

/// Builds the packed stream pixel by pixel, so that callers can feed frames from any
/// iterator (for example an ndarray view, whatever its memory layout).
#[derive(Debug, Default, Clone)]
pub struct BitPacker {
    /// Packed bytes so far; the last one may be partly filled.
    bytes: Vec<u8>,
    /// Number of pixels pushed so far.
    pixels: usize,
}

impl BitPacker {
    /// An empty packer with room for `total_pixels` pixels.
    pub fn with_capacity(total_pixels: usize) -> Self {
        BitPacker {
            bytes: Vec::with_capacity(packed_len(total_pixels)),
            pixels: 0,
        }
    }

    /// Append one pixel to the stream.
    #[inline]
    pub fn push(&mut self, on: bool) {
        let bit = self.pixels % 8;
        if bit == 0 {
            self.bytes.push(0);
        }
        if on {
            // The byte for this pixel was pushed when bit 0 of it was reached.
            *self.bytes.last_mut().expect("byte pushed at bit 0") |= 1 << bit;
        }
        self.pixels += 1;
    }

    /// Append every pixel of `pixels`, in order.
    pub fn extend(&mut self, pixels: impl IntoIterator<Item = bool>) {
        for on in pixels {
            self.push(on);
        }
    }

    /// Number of pixels pushed so far.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// The finished Pixel Data value: the stream padded with zero bits to an even byte length.
    pub fn finish(mut self) -> Vec<u8> {
        if self.bytes.len() % 2 == 1 {
            self.bytes.push(0);
        }
        self.bytes
    }
}

/// Pack frames (each a row-major slice of pixels) into one Pixel Data value.
pub fn pack_frames<'a>(frames: impl IntoIterator<Item = &'a [bool]>) -> Vec<u8> {
    let mut packer = BitPacker::default();
    for frame in frames {
        packer.extend(frame.iter().copied());
    }
    packer.finish()
}

/// Read `count` pixels starting at pixel `start` of the packed stream `data`.
pub fn unpack(data: &[u8], start: usize, count: usize) -> Result<Vec<bool>, Truncated> {
    let end = start + count;
    let needed = end.div_ceil(8);
    if data.len() < needed {
        return Err(Truncated {
            needed,
            available: data.len(),
        });
    }
    Ok((start..end)
        .map(|i| data[i / 8] >> (i % 8) & 1 == 1)
        .collect())
}

/// Unpack frame `frame` (0-based) of a stream of `rows` × `columns` frames.
pub fn unpack_frame(
    data: &[u8],
    frame: usize,
    rows: usize,
    columns: usize,
) -> Result<Array2<bool>, Truncated> {
    let per_frame = rows * columns;
    let pixels = unpack(data, frame * per_frame, per_frame)?;
    Ok(Array2::from_shape_vec((rows, columns), pixels)
        .expect("rows * columns pixels were unpacked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, irregular pattern so that every bit position is exercised.
    fn pattern(frame: usize, rows: usize, columns: usize) -> Vec<bool> {
        (0..rows * columns)
            .map(|i| (i * 7 + frame * 3 + i / columns) % 5 < 2)
            .collect()
    }

    #[test]
    fn known_bytes_lsb_first() {
        // Pixels 0, 2 and 9 set: byte 0 = 0b0000_0101, byte 1 = 0b0000_0010.
        let mut frame = vec![false; 12];
        frame[0] = true;
        frame[2] = true;
        frame[9] = true;
        assert_eq!(pack_frames([frame.as_slice()]), vec![0x05, 0x02]);
        // Two 2x3 frames continue in the same byte: frame 1 starts at bit 6 of byte 0.
        let a = [true, false, false, false, false, true];
        let b = [true, true, false, false, false, true];
        // Stream: 1 0 0 0 0 1 | 1 1 0 0 0 1 → byte0 bits0..7 = 1,0,0,0,0,1,1,1 = 0xE1;
        // byte1 bits 0..3 = 0,0,0,1 = 0x08; padded to even length → 2 bytes.
        assert_eq!(pack_frames([&a[..], &b[..]]), vec![0xE1, 0x08]);
    }

    #[test]
    fn pads_whole_value_to_even_length() {
        assert_eq!(pack_frames([&[true; 8][..]]), vec![0xFF, 0x00]);
        assert_eq!(pack_frames([&[true; 16][..]]), vec![0xFF, 0xFF]);
        assert_eq!(pack_frames([&[true; 17][..]]), vec![0xFF, 0xFF, 0x01, 0x00]);
        assert_eq!(pack_frames(std::iter::empty::<&[bool]>()), Vec::<u8>::new());
        for n in 0..100 {
            let packed = pack_frames([vec![true; n].as_slice()]);
            assert_eq!(packed.len(), packed_len(n));
            assert_eq!(packed.len() % 2, 0, "{n} pixels");
            assert!(packed.len() * 8 >= n);
        }
    }

    #[test]
    fn frames_of_13x11_round_trip_across_byte_boundaries() {
        let (rows, columns, frames) = (13, 11, 5);
        let originals: Vec<Vec<bool>> = (0..frames).map(|f| pattern(f, rows, columns)).collect();
        let packed = pack_frames(originals.iter().map(Vec::as_slice));
        // 5 * 143 = 715 bits = 89.375 bytes → 90 bytes, already even.
        assert_eq!(packed.len(), 90);
        // No padding between frames: frame 1 starts at bit 143 = bit 7 of byte 17.
        assert_eq!(packed[17] >> 7 & 1 == 1, originals[1][0]);
        for (f, original) in originals.iter().enumerate() {
            let frame = unpack_frame(&packed, f, rows, columns).unwrap();
            let flat: Vec<bool> = frame.iter().copied().collect();
            assert_eq!(&flat, original, "frame {f}");
            // Row-major: pixel (r, c) is element r * columns + c.
            assert_eq!(frame[[12, 10]], original[12 * 11 + 10]);
        }
        // Padding bits beyond the last frame are zero.
        assert_eq!(packed[89] >> 3, 0);
    }

    #[test]
    fn packer_matches_pack_frames_and_reports_truncation() {
        let frame = pattern(0, 3, 3);
        let mut packer = BitPacker::with_capacity(18);
        packer.extend(frame.iter().copied());
        packer.extend(frame.iter().copied());
        assert_eq!(packer.pixels(), 18);
        let packed = packer.finish();
        assert_eq!(packed, pack_frames([frame.as_slice(), frame.as_slice()]));
        assert_eq!(unpack(&packed, 9, 9).unwrap(), frame);
        assert_eq!(
            unpack_frame(&packed, 3, 3, 3),
            Err(Truncated {
                needed: 5,
                available: 4
            })
        );
    }
}
