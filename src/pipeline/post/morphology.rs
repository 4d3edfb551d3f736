//! Binary erosion and dilation by the 6-connected cross, iterated `radius` times.

use ndarray::Array3;

use super::{Crop, step};

/// Erode `mask` by the city-block ball of `radius` voxels; beyond the border is background.
pub(crate) fn erode(mask: &mut Array3<bool>, radius: usize) {
    // Erosion only shrinks, so the foreground box holds the whole result; voxels just
    // outside it are background, as the step assumes for out-of-box neighbours.
    morph(mask, radius, 0, true);
}

/// Dilate `mask` by the city-block ball of `radius` voxels.
pub(crate) fn dilate(mask: &mut Array3<bool>, radius: usize) {
    // The result lies within `radius` of the foreground box.
    morph(mask, radius, radius, false);
}

fn morph(mask: &mut Array3<bool>, radius: usize, margin: usize, erode: bool) {
    if radius == 0 {
        return;
    }
    let Some(mut crop) = Crop::around_foreground(mask, margin) else {
        return;
    };
    let mut next = vec![0_u8; crop.voxels.len()];
    for _ in 0..radius {
        cross_step(&crop, &mut next, erode);
        std::mem::swap(&mut crop.voxels, &mut next);
    }
    crop.store(mask, |v| v != 0);
}

/// One erosion (`erode`) or dilation step by the 6-connected cross, box voxels only (the
/// padding of `next` stays 0). Works a row at a time, combining the row with its six
/// shifted neighbour rows in straight passes the compiler vectorises.
fn cross_step(crop: &Crop, next: &mut [u8], erode: bool) {
    let cur = &crop.voxels;
    let [d, h, w] = crop.dims;
    let offsets = crop.face_offsets();
    for k in 0..d {
        for r in 0..h {
            let i = crop.index(k, r, 0);
            let out = &mut next[i..i + w];
            out.copy_from_slice(&cur[i..i + w]);
            for &o in &offsets {
                let start = step(i, o);
                let neighbour = &cur[start..start + w];
                if erode {
                    out.iter_mut().zip(neighbour).for_each(|(v, &n)| *v &= n);
                } else {
                    out.iter_mut().zip(neighbour).for_each(|(v, &n)| *v |= n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn cube(shape: usize, lo: usize, hi: usize) -> Array3<bool> {
        let mut m = Array3::from_elem((shape, shape, shape), false);
        m.slice_mut(s![lo..hi, lo..hi, lo..hi]).fill(true);
        m
    }

    fn count(m: &Array3<bool>) -> usize {
        m.iter().filter(|&&v| v).count()
    }

    #[test]
    fn eroding_a_cube_peels_one_layer_per_radius() {
        let mut m = cube(12, 2, 9); // 7^3
        erode(&mut m, 1);
        assert_eq!(m, cube(12, 3, 8)); // 5^3
        erode(&mut m, 2);
        assert_eq!(count(&m), 1);
        assert!(m[[5, 5, 5]]);
        erode(&mut m, 1);
        assert_eq!(count(&m), 0);
    }

    #[test]
    fn the_volume_border_counts_as_background() {
        let mut m = Array3::from_elem((4, 4, 4), true);
        erode(&mut m, 1);
        assert_eq!(m, cube(4, 1, 3));
    }

    #[test]
    fn dilating_a_point_gives_the_city_block_ball() {
        let mut m = Array3::from_elem((9, 9, 9), false);
        m[[4, 4, 4]] = true;
        dilate(&mut m, 1);
        assert_eq!(count(&m), 7);
        dilate(&mut m, 1);
        assert_eq!(count(&m), 25); // |dk|+|dr|+|dc| <= 2
        for ((k, r, c), &v) in m.indexed_iter() {
            let d = k.abs_diff(4) + r.abs_diff(4) + c.abs_diff(4);
            assert_eq!(v, d <= 2, "{k},{r},{c}");
        }
        // Dilation then erosion of a cube (away from the border) restores it.
        let mut c = cube(12, 3, 8);
        dilate(&mut c, 1);
        erode(&mut c, 1);
        assert_eq!(c, cube(12, 3, 8));
    }
}
