//! Binary erosion and dilation, iterated `radius` times, by the 6-connected cross (city-block
//! ball) or the 3x3x3 cube (chessboard ball; done as one ±1 pass per axis, since the cube
//! is the product of three 1-D segments).

use ndarray::Array3;

use super::{Crop, Reach, Structure, step};

/// Erode `mask` by the ball of `radius` voxels of `shape`; beyond the border is background.
#[cfg(test)]
pub(crate) fn erode(mask: &mut Array3<bool>, radius: usize, shape: Structure) {
    erode_within(mask, radius, shape, Reach::Volume);
}

/// Dilate `mask` by the ball of `radius` voxels of `shape`.
#[cfg(test)]
pub(crate) fn dilate(mask: &mut Array3<bool>, radius: usize, shape: Structure) {
    dilate_within(mask, radius, shape, Reach::Volume);
}

/// Erode by the ball of `radius` voxels of `shape`, with neighbours taken across slices
/// (`Reach::Volume`) or only within each slice (`Reach::InPlane`); beyond the border is
/// background.
pub(crate) fn erode_within(mask: &mut Array3<bool>, radius: usize, shape: Structure, reach: Reach) {
    // Erosion only shrinks, so the foreground box holds the whole result; voxels just
    // outside it are background, as the step assumes for out-of-box neighbours.
    morph(mask, radius, 0, true, shape, reach);
}

/// Dilate by the ball of `radius` voxels of `shape`, across slices or within each slice.
pub(crate) fn dilate_within(
    mask: &mut Array3<bool>,
    radius: usize,
    shape: Structure,
    reach: Reach,
) {
    // The result lies within `radius` of the foreground box.
    morph(mask, radius, radius, false, shape, reach);
}

fn morph(
    mask: &mut Array3<bool>,
    radius: usize,
    margin: usize,
    erode: bool,
    shape: Structure,
    reach: Reach,
) {
    if radius == 0 {
        return;
    }
    let Some(mut crop) = Crop::around_foreground(mask, margin) else {
        return;
    };
    let mut next = vec![0_u8; crop.voxels.len()];
    let offsets = crop.neighbour_offsets(reach);
    for _ in 0..radius {
        match shape {
            Structure::Cross => {
                neighbour_step(&crop, &mut next, erode, &offsets);
                std::mem::swap(&mut crop.voxels, &mut next);
            }
            Structure::Cube => {
                for axis in offsets.chunks(2) {
                    neighbour_step(&crop, &mut next, erode, axis);
                    std::mem::swap(&mut crop.voxels, &mut next);
                }
            }
        }
    }
    crop.store(mask, |v| v != 0);
}

/// One erosion (`erode`) or dilation step with the given neighbour offsets, box voxels
/// only (the padding of `next` stays 0). Works a row at a time, combining the row with its
/// shifted neighbour rows in straight passes the compiler vectorises.
fn neighbour_step(crop: &Crop, next: &mut [u8], erode: bool, offsets: &[isize]) {
    let cur = &crop.voxels;
    let [d, h, w] = crop.dims;
    for k in 0..d {
        for r in 0..h {
            let i = crop.index(k, r, 0);
            let out = &mut next[i..i + w];
            out.copy_from_slice(&cur[i..i + w]);
            for &o in offsets {
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
        erode(&mut m, 1, Structure::Cross);
        assert_eq!(m, cube(12, 3, 8)); // 5^3
        erode(&mut m, 2, Structure::Cross);
        assert_eq!(count(&m), 1);
        assert!(m[[5, 5, 5]]);
        erode(&mut m, 1, Structure::Cross);
        assert_eq!(count(&m), 0);
    }

    #[test]
    fn the_volume_border_counts_as_background() {
        let mut m = Array3::from_elem((4, 4, 4), true);
        erode(&mut m, 1, Structure::Cross);
        assert_eq!(m, cube(4, 1, 3));
    }

    #[test]
    fn dilating_a_point_gives_the_city_block_ball() {
        let mut m = Array3::from_elem((9, 9, 9), false);
        m[[4, 4, 4]] = true;
        dilate(&mut m, 1, Structure::Cross);
        assert_eq!(count(&m), 7);
        dilate(&mut m, 1, Structure::Cross);
        assert_eq!(count(&m), 25); // |dk|+|dr|+|dc| <= 2
        for ((k, r, c), &v) in m.indexed_iter() {
            let d = k.abs_diff(4) + r.abs_diff(4) + c.abs_diff(4);
            assert_eq!(v, d <= 2, "{k},{r},{c}");
        }
        // Dilation then erosion of a cube (away from the border) restores it.
        let mut c = cube(12, 3, 8);
        dilate(&mut c, 1, Structure::Cross);
        erode(&mut c, 1, Structure::Cross);
        assert_eq!(c, cube(12, 3, 8));
    }

    #[test]
    fn the_cube_removes_what_the_cross_keeps() {
        // A 3x3x3 block with its 8 corners missing: the centre's 6 face neighbours are set,
        // so the cross keeps it; its corner neighbours are not, so the cube removes it.
        let mut m = cube(5, 1, 4);
        for (a, b, c) in [
            (1, 1, 1),
            (1, 1, 3),
            (1, 3, 1),
            (1, 3, 3),
            (3, 1, 1),
            (3, 1, 3),
            (3, 3, 1),
            (3, 3, 3),
        ] {
            m[[a, b, c]] = false;
        }
        let mut crossed = m.clone();
        erode(&mut crossed, 1, Structure::Cross);
        assert!(crossed[[2, 2, 2]]);
        assert_eq!(count(&crossed), 1);
        erode(&mut m, 1, Structure::Cube);
        assert_eq!(count(&m), 0);

        // Dilating a point by the cube gives the full 3x3x3 block; twice, 5x5x5.
        let mut p = cube(7, 3, 4);
        dilate(&mut p, 1, Structure::Cube);
        assert_eq!(count(&p), 27);
        dilate(&mut p, 1, Structure::Cube);
        assert_eq!(count(&p), 125);
    }
}
