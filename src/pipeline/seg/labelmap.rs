//! LABELMAP pixel data (Supplement 243): one frame per source frame whose pixel values are
//! segment numbers (0: no segment), 8 bits when every segment number fits, else 16, little
//! endian, frames one after the other. Nothing is bit-packed, so every frame starts on a
//! byte boundary whatever its size.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use ndarray::{Array2, Array3, Axis};

use super::error::SegError;
use super::frames::PlannedFrame;

/// Bits allocated (and stored) for `segments` segment numbers: 8 up to 255, else 16.
pub(crate) fn bits_for(segments: usize) -> u16 {
    if segments <= usize::from(u8::MAX) {
        8
    } else {
        16
    }
}

/// The value of the pixel at `index` (row-major) of source slice `slice`: the number of
/// the segment whose mask holds it, or 0. Masks must not overlap (checked by the caller).
fn label_at(masks: &[Array3<bool>], slice: usize, index: (usize, usize)) -> u16 {
    masks
        .iter()
        .position(|m| m[[slice, index.0, index.1]])
        .map_or(0, |s| s as u16 + 1)
}

/// Pixel Data of the planned LABELMAP frames: OB with 8-bit values, OW with 16-bit ones;
/// padded to an even length.
pub(crate) fn label_pixel_data(
    plan: &[PlannedFrame],
    masks: &[Array3<bool>],
) -> Result<InMemElement, SegError> {
    let first = masks.first().ok_or_else(|| {
        SegError::setting("segments", "a LABELMAP SEG needs at least one segment")
    })?;
    let (rows, columns) = (first.len_of(Axis(1)), first.len_of(Axis(2)));
    let per_frame = rows * columns;
    let wide = bits_for(masks.len()) == 16;
    let mut bytes = Vec::with_capacity(plan.len() * per_frame * if wide { 2 } else { 1 });
    for frame in plan {
        for r in 0..rows {
            for c in 0..columns {
                let v = label_at(masks, frame.slice, (r, c));
                if wide {
                    bytes.extend_from_slice(&v.to_le_bytes());
                } else {
                    bytes.push(v as u8);
                }
            }
        }
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    if u32::try_from(bytes.len()).is_err() {
        return Err(SegError::Unsupported(format!(
            "{} bytes of pixel data exceed one DICOM element",
            bytes.len()
        )));
    }
    Ok(if wide {
        let words = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words))
    } else {
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(bytes.into()))
    })
}

/// Frame `frame` (0-based) of LABELMAP pixel data of `bits` (8 or 16) bits per pixel, as
/// segment numbers `[rows, columns]`.
pub(crate) fn read_label_frame(
    data: &[u8],
    frame: usize,
    rows: usize,
    columns: usize,
    bits: u32,
) -> Result<Array2<u16>, String> {
    let per_frame = rows * columns;
    let width = if bits == 16 { 2 } else { 1 };
    let start = frame * per_frame * width;
    let bytes = data.get(start..start + per_frame * width).ok_or_else(|| {
        format!(
            "pixel data holds {} bytes, too few for frame {}",
            data.len(),
            frame + 1
        )
    })?;
    let values = if width == 2 {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect()
    } else {
        bytes.iter().map(|&b| u16::from(b)).collect()
    };
    Ok(Array2::from_shape_vec((rows, columns), values).expect("rows * columns values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_segment_numbers_in_frame_order() {
        let mut a = Array3::from_elem((2, 1, 3), false);
        let mut b = Array3::from_elem((2, 1, 3), false);
        a[[1, 0, 0]] = true;
        b[[1, 0, 2]] = true;
        b[[0, 0, 1]] = true;
        let plan = [
            PlannedFrame {
                segment: 0,
                slice: 1,
            },
            PlannedFrame {
                segment: 0,
                slice: 0,
            },
        ];
        let element = label_pixel_data(&plan, &[a, b]).unwrap();
        assert_eq!(element.vr(), VR::OB);
        assert_eq!(&*element.to_bytes().unwrap(), &[1, 0, 2, 0, 2, 0]);
        let back = read_label_frame(&element.to_bytes().unwrap(), 1, 1, 3, 8).unwrap();
        assert_eq!(back.into_raw_vec_and_offset().0, [0, 2, 0]);
        assert_eq!(bits_for(255), 8);
        assert_eq!(bits_for(256), 16);
    }
}
