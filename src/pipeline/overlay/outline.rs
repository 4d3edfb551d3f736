//! Segment outlines: the pixels of a mask that lie within `thickness` pixels (8-connected
//! distance) of a pixel outside it, burned into the frame in the segment's colour. Only
//! mask pixels are drawn, so everything outside the segments stays the grey source.

use ndarray::{Array2, ArrayView2};

use super::Canvas;

/// Outline width in pixels for a frame: 1 on small frames (MR slices), 2 from 512 pixels
/// up (ultrasound screens), where a 1-pixel line is hard to see once the viewer shrinks
/// the image to fit.
pub fn thickness_for(rows: usize, columns: usize) -> usize {
    if rows.min(columns) >= 512 { 2 } else { 1 }
}

/// The outline of `mask`: mask pixels with a pixel outside the mask, or the frame's edge,
/// within `thickness` rows and columns.
pub fn outline(mask: ArrayView2<bool>, thickness: usize) -> Array2<bool> {
    let (rows, columns) = mask.dim();
    let t = thickness.max(1) as isize;
    Array2::from_shape_fn((rows, columns), |(r, c)| {
        if !mask[(r, c)] {
            return false;
        }
        for dr in -t..=t {
            for dc in -t..=t {
                let (rr, cc) = (r as isize + dr, c as isize + dc);
                if rr < 0 || cc < 0 || rr >= rows as isize || cc >= columns as isize {
                    return true;
                }
                if !mask[(rr as usize, cc as usize)] {
                    return true;
                }
            }
        }
        false
    })
}

/// Draw the outline of `mask` in `rgb` onto the top `mask.nrows()` rows of `canvas`.
pub fn burn(canvas: &mut Canvas, mask: ArrayView2<bool>, thickness: usize, rgb: [u8; 3]) {
    if !mask.iter().any(|&m| m) {
        return;
    }
    for ((r, c), &on) in outline(mask, thickness).indexed_iter() {
        if on {
            canvas.set(r, c, rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(size: usize, from: usize, to: usize) -> Array2<bool> {
        Array2::from_shape_fn((size, size), |(r, c)| {
            (from..to).contains(&r) && (from..to).contains(&c)
        })
    }

    #[test]
    fn a_filled_square_keeps_only_its_rim() {
        let mask = square(10, 2, 8);
        let rim = outline(mask.view(), 1);
        assert_eq!(rim.iter().filter(|&&b| b).count(), 6 * 6 - 4 * 4);
        assert!(rim[(2, 2)] && rim[(2, 5)] && rim[(7, 7)]);
        assert!(
            !rim[(4, 4)] && !rim[(1, 1)],
            "inside and outside are not outline"
        );
        let thick = outline(mask.view(), 2);
        assert_eq!(thick.iter().filter(|&&b| b).count(), 6 * 6 - 2 * 2);
    }

    #[test]
    fn the_frame_edge_closes_an_outline() {
        let mask = Array2::from_elem((3, 3), true);
        let rim = outline(mask.view(), 1);
        assert_eq!(rim.iter().filter(|&&b| b).count(), 8);
        assert!(!rim[(1, 1)]);
    }

    #[test]
    fn burning_colours_the_rim_and_nothing_else() {
        let mut canvas = Canvas::grey(5, 5, &[100; 25]);
        burn(&mut canvas, square(5, 1, 4).view(), 1, [255, 0, 0]);
        assert_eq!(canvas.get(1, 1), [255, 0, 0]);
        assert_eq!(
            canvas.get(2, 2),
            [100, 100, 100],
            "the centre is not outline"
        );
        assert_eq!(canvas.get(0, 0), [100, 100, 100]);
        assert_eq!(thickness_for(661, 959), 2);
        assert_eq!(thickness_for(96, 96), 1);
    }
}
