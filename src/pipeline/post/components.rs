//! Connected components (26-connected foreground) and hole filling (6-connected
//! background).
//!
//! Components are found on runs (maximal stretches of foreground along a row) with a
//! union-find over the runs of neighbouring rows, so the cost grows with the number of
//! runs, not of voxels; holes are found by a flood fill of the background with an explicit
//! heap stack. Nothing recurses.

use ndarray::Array3;

use super::{Crop, Reach, step};

/// Keep only the largest 26-connected component (the first in raster order on ties).
pub(crate) fn keep_largest(mask: &mut Array3<bool>) {
    let Some(mut crop) = Crop::around_foreground(mask, 0) else {
        return;
    };
    let components = Components::find(&crop);
    let sizes = &components.sizes;
    // sizes[0] is unused; component 1 is the first in raster order.
    let best = (1..sizes.len()).fold(1, |best, c| if sizes[c] > sizes[best] { c } else { best });
    components.keep(&mut crop, |c| c == best);
    crop.store(mask, |v| v != 0);
}

/// The number of 26-connected components of the foreground (0 when empty).
pub(crate) fn count(mask: &Array3<bool>) -> usize {
    Crop::around_foreground(mask, 0).map_or(0, |crop| Components::find(&crop).sizes.len() - 1)
}

/// Remove 26-connected components of fewer than `min` voxels.
pub(crate) fn remove_smaller_than(mask: &mut Array3<bool>, min: usize) {
    let Some(mut crop) = Crop::around_foreground(mask, 0) else {
        return;
    };
    let components = Components::find(&crop);
    components.keep(&mut crop, |c| components.sizes[c] >= min);
    crop.store(mask, |v| v != 0);
}

/// A maximal stretch of foreground along one row of a crop: box row `row` (`k * h + r`),
/// columns `start..end`.
#[derive(Debug, Clone, Copy)]
struct Run {
    row: usize,
    start: usize,
    end: usize,
}

/// The 26-connected components of a crop.
struct Components {
    /// Every run, in raster order.
    runs: Vec<Run>,
    /// Component (1-based, numbered in raster order of first voxel) of each run.
    component: Vec<usize>,
    /// Voxels per component; `sizes[0]` is unused.
    sizes: Vec<usize>,
}

impl Components {
    fn find(crop: &Crop) -> Components {
        let [d, h, w] = crop.dims;
        // Runs, and where each row's runs begin.
        let mut runs = Vec::new();
        let mut row_start = Vec::with_capacity(d * h + 1);
        for k in 0..d {
            for r in 0..h {
                row_start.push(runs.len());
                let i = crop.index(k, r, 0);
                let row = &crop.voxels[i..i + w];
                let mut c = 0;
                while let Some(offset) = row[c..].iter().position(|&v| v != 0) {
                    let start = c + offset;
                    let end = row[start..]
                        .iter()
                        .position(|&v| v == 0)
                        .map_or(w, |n| start + n);
                    runs.push(Run {
                        row: k * h + r,
                        start,
                        end,
                    });
                    c = end;
                    if c >= w {
                        break;
                    }
                }
            }
        }
        row_start.push(runs.len());
        let row_runs = |row: usize| row_start[row]..row_start[row + 1];

        // Union the runs of each row with those of the earlier rows they can touch:
        // the previous row of the same plane and the three facing rows of the previous plane.
        let mut parent: Vec<usize> = (0..runs.len()).collect();
        for k in 0..d {
            for r in 0..h {
                let here = row_runs(k * h + r);
                let mut earlier = [usize::MAX; 4];
                if r > 0 {
                    earlier[0] = k * h + r - 1;
                }
                if k > 0 {
                    for rr in r.saturating_sub(1)..(r + 2).min(h) {
                        earlier[1 + rr + 1 - r] = (k - 1) * h + rr;
                    }
                }
                for other in earlier.into_iter().filter(|&o| o != usize::MAX) {
                    let there = row_runs(other);
                    let (mut i, mut j) = (here.start, there.start);
                    while i < here.end && j < there.end {
                        let (a, b) = (runs[i], runs[j]);
                        // Touching by a face, edge or corner: column ranges within one.
                        if b.start <= a.end && a.start <= b.end {
                            union(&mut parent, i, j);
                        }
                        if a.end < b.end {
                            i += 1;
                        } else {
                            j += 1;
                        }
                    }
                }
            }
        }

        // Number components in raster order of their first run.
        let mut id_of_root = vec![0_usize; runs.len()];
        let mut component = Vec::with_capacity(runs.len());
        let mut sizes = vec![0_usize];
        for (i, run) in runs.iter().enumerate() {
            let root = find(&mut parent, i);
            if id_of_root[root] == 0 {
                id_of_root[root] = sizes.len();
                sizes.push(0);
            }
            let id = id_of_root[root];
            sizes[id] += run.end - run.start;
            component.push(id);
        }
        Components {
            runs,
            component,
            sizes,
        }
    }

    /// Rewrite the crop to hold only the components for which `keep` is true.
    fn keep(&self, crop: &mut Crop, keep: impl Fn(usize) -> bool) {
        let h = crop.dims[1];
        crop.voxels.fill(0);
        for (run, &c) in self.runs.iter().zip(&self.component) {
            if keep(c) {
                let i = crop.index(run.row / h, run.row % h, run.start);
                crop.voxels[i..i + run.end - run.start].fill(1);
            }
        }
    }
}

/// Root of `i`, halving the path on the way.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // The earlier run becomes the root; any choice is correct.
        parent[ra.max(rb)] = ra.min(rb);
    }
}

/// Flood-fill state of a voxel during hole filling.
const BACKGROUND: u8 = 0;
const OUTSIDE: u8 = 2;

/// Set every background voxel that is not 6-connected (through background) to the volume
/// border.
#[cfg(test)]
pub(crate) fn fill_holes(mask: &mut Array3<bool>) {
    fill_holes_within(mask, Reach::Volume);
}

/// Fill the holes of the whole volume (`Reach::Volume`: background not 6-connected to the
/// volume border), or of each slice on its own (`Reach::InPlane`: background not
/// 4-connected to the slice's border).
pub(crate) fn fill_holes_within(mask: &mut Array3<bool>, reach: Reach) {
    // A one-voxel margin of background around the foreground box (or the volume border
    // itself) is connected to the border, so flooding from the box faces is exact.
    let Some(mut crop) = Crop::around_foreground(mask, 1) else {
        return;
    };
    let [d, h, w] = crop.dims;
    // The padding is already outside; it stops the flood without bounds checks.
    let padded = crop.padded_dims();
    for k in 0..padded[0] {
        for r in 0..padded[1] {
            let inner_row = (1..=d).contains(&k) && (1..=h).contains(&r);
            let start = (k * padded[1] + r) * padded[2];
            let row = &mut crop.voxels[start..start + padded[2]];
            if inner_row {
                row[0] = OUTSIDE;
                row[padded[2] - 1] = OUTSIDE;
            } else {
                row.fill(OUTSIDE);
            }
        }
    }
    let mut stack: Vec<usize> = Vec::new();
    let mut seed = |voxels: &mut [u8], i: usize| {
        if voxels[i] == BACKGROUND {
            voxels[i] = OUTSIDE;
            stack.push(i);
        }
    };
    for k in 0..d {
        for r in 0..h {
            let slice_face = reach == Reach::Volume && (k == 0 || k + 1 == d);
            let whole_row = slice_face || r == 0 || r + 1 == h;
            let i = crop.index(k, r, 0);
            if whole_row {
                (i..i + w).for_each(|i| seed(&mut crop.voxels, i));
            } else {
                seed(&mut crop.voxels, i);
                seed(&mut crop.voxels, i + w - 1);
            }
        }
    }
    let offsets = crop.neighbour_offsets(reach);
    while let Some(i) = stack.pop() {
        for &o in &offsets {
            let n = step(i, o);
            if crop.voxels[n] == BACKGROUND {
                crop.voxels[n] = OUTSIDE;
                stack.push(n);
            }
        }
    }
    crop.store(mask, |v| v != OUTSIDE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn count(m: &Array3<bool>) -> usize {
        m.iter().filter(|&&v| v).count()
    }

    #[test]
    fn labels_are_26_connected_with_their_sizes() {
        let mut m = Array3::from_elem((6, 6, 6), false);
        m.slice_mut(s![0..2, 0..2, 0..2]).fill(true); // 8 voxels
        m[[2, 2, 2]] = true; // touches the cube by a corner only: same component
        m.slice_mut(s![4..6, 4..6, 0..3]).fill(true); // 12 voxels
        m[[0, 5, 5]] = true; // isolated
        let crop = Crop::around_foreground(&m, 0).unwrap();
        let components = Components::find(&crop);
        // Numbered in raster order of the first voxel: the cube, the isolated voxel, the box.
        assert_eq!(components.sizes, vec![0, 9, 1, 12]);

        let mut largest = m.clone();
        keep_largest(&mut largest);
        assert_eq!(count(&largest), 12);
        assert!(largest[[5, 5, 2]] && !largest[[0, 0, 0]]);

        let mut big = m.clone();
        remove_smaller_than(&mut big, 9);
        assert_eq!(count(&big), 21);
        assert!(!big[[0, 5, 5]] && big[[2, 2, 2]]);
    }

    #[test]
    fn keep_largest_prefers_the_first_on_ties_and_ignores_empty_masks() {
        let mut m = Array3::from_elem((3, 3, 5), false);
        m[[1, 1, 0]] = true;
        m[[1, 1, 4]] = true;
        keep_largest(&mut m);
        assert!(m[[1, 1, 0]] && !m[[1, 1, 4]]);
        let mut empty = Array3::from_elem((3, 3, 3), false);
        keep_largest(&mut empty);
        fill_holes(&mut empty);
        assert_eq!(count(&empty), 0);
    }

    #[test]
    fn filling_a_hollow_sphere_makes_it_solid() {
        let n = 21;
        let centre = 10.0;
        let dist = |k: usize, r: usize, c: usize| {
            ((k as f64 - centre).powi(2)
                + (r as f64 - centre).powi(2)
                + (c as f64 - centre).powi(2))
            .sqrt()
        };
        let hollow =
            Array3::from_shape_fn((n, n, n), |(k, r, c)| (6.0..=8.0).contains(&dist(k, r, c)));
        let solid = Array3::from_shape_fn((n, n, n), |(k, r, c)| dist(k, r, c) <= 8.0);
        let mut m = hollow.clone();
        fill_holes(&mut m);
        assert_eq!(m, solid);
        // A shell with a one-voxel tunnel to the outside keeps its cavity empty.
        let mut open = hollow.clone();
        for c in 0..=10 {
            open[[10, 10, c]] = false;
        }
        let tunnelled = open.clone();
        fill_holes(&mut open);
        assert_eq!(open, tunnelled);
    }

    #[test]
    fn holes_touching_the_border_are_not_holes() {
        // A tube that spans the whole volume along one axis: its bore reaches the border
        // only through the two end faces of that axis. Tried along each axis in turn.
        let mut tube = Array3::from_elem((5, 7, 7), false);
        tube.slice_mut(s![.., 1..6, 1..6]).fill(true);
        tube.slice_mut(s![.., 2..5, 2..5]).fill(false);
        // A cup: closed at the start, open only through the far end face.
        let mut cup = tube.clone();
        cup.slice_mut(s![0, 1..6, 1..6]).fill(true);
        let mut closed = cup.clone();
        closed.slice_mut(s![4, 1..6, 1..6]).fill(true);
        for axes in [[0, 1, 2], [1, 0, 2], [1, 2, 0]] {
            let along = |m: &Array3<bool>| {
                m.clone()
                    .permuted_axes(axes)
                    .as_standard_layout()
                    .to_owned()
            };
            let mut m = along(&tube);
            fill_holes(&mut m);
            assert_eq!(m, along(&tube), "open tube along axis {axes:?}");
            let mut m = along(&cup);
            fill_holes(&mut m);
            assert_eq!(m, along(&cup), "cup along axis {axes:?}");
            // Closed ends: now the bore is a cavity.
            let mut m = along(&closed);
            fill_holes(&mut m);
            assert_eq!(count(&m), 5 * 25, "closed tube along axis {axes:?}");
        }
    }
}
