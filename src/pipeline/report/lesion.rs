//! What a DCE segment measures in patient coordinates, from the final mask on the source
//! grid: volume, connected components, the longest 3D diameter and the share of the
//! imaged volume.
//!
//! The longest diameter is the largest distance between two foreground voxel *centres*,
//! in mm, through the grid's spacing and direction cosines (so anisotropic and oblique
//! grids measure right). It is exact, and its cost is bounded in two steps:
//! 1. Only voxels that are the first or last foreground voxel of their line along each of
//!    the three index axes can be the ends of the diameter: a voxel strictly between two
//!    foreground voxels of a line is not a corner of the convex hull, and a set's diameter
//!    joins two corners of its hull. This keeps roughly the voxels of the surface that face
//!    outwards along every axis — O(surface), one pass over the bounding box.
//! 2. The remaining `m` candidates are compared pairwise: O(m²), with m capped at
//!    [`MAX_DIAMETER_POINTS`] (2·10⁸ distance computations, well under a second). Past the
//!    cap, every k-th candidate is kept, the diameter is a lower bound, and
//!    [`Diameter::exact`] says so (a sphere of ~60 voxels radius reaches the cap).

use ndarray::{Array3, s};

use crate::pipeline::post;
use crate::pipeline::volume::Grid;

/// Candidate ends of the diameter compared pairwise at most.
pub const MAX_DIAMETER_POINTS: usize = 20_000;

/// The longest 3D diameter of a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diameter {
    /// Largest distance between two foreground voxel centres, mm.
    pub mm: f64,
    /// False when the candidates exceeded [`MAX_DIAMETER_POINTS`] and were thinned, so
    /// `mm` may fall short of the true value by up to the thinning gap.
    pub exact: bool,
}

/// What one DCE segment measures.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionMeasures {
    /// Foreground volume, ml (voxels × voxel volume).
    pub volume_ml: f64,
    /// 26-connected components.
    pub components: usize,
    /// Longest diameter; `None` for an empty mask.
    pub diameter: Option<Diameter>,
    /// Foreground voxels as a percentage of all voxels of the volume.
    pub volume_percent: f64,
}

/// Measure `mask` (`[slice, row, col]` on `grid`).
///
/// # Panics
/// If `mask`'s shape is not `grid.shape`.
pub fn measure(mask: &Array3<bool>, grid: &Grid) -> LesionMeasures {
    let findings = post::findings(mask, grid);
    LesionMeasures {
        volume_ml: findings.volume_ml.unwrap_or(0.0),
        components: post::component_count(mask),
        diameter: longest_diameter(mask, grid),
        volume_percent: findings.fraction_percent,
    }
}

/// The longest distance between two foreground voxel centres of `mask`, in patient mm;
/// `None` when the mask is empty. A single voxel measures 0.
pub fn longest_diameter(mask: &Array3<bool>, grid: &Grid) -> Option<Diameter> {
    let (lo, hi) = post::bounding_box(mask, 0)?;
    let boxed = mask.slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
    let [d, h, w] = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    // Bit a set: the voxel is the first or last foreground voxel of its line along axis a.
    let mut extreme = Array3::<u8>::zeros((d, h, w));
    for k in 0..d {
        for r in 0..h {
            let line = boxed.slice(s![k, r, ..]);
            if let (Some(a), Some(b)) =
                (line.iter().position(|&v| v), line.iter().rposition(|&v| v))
            {
                extreme[[k, r, a]] |= 4;
                extreme[[k, r, b]] |= 4;
            }
        }
        for c in 0..w {
            let line = boxed.slice(s![k, .., c]);
            if let (Some(a), Some(b)) =
                (line.iter().position(|&v| v), line.iter().rposition(|&v| v))
            {
                extreme[[k, a, c]] |= 2;
                extreme[[k, b, c]] |= 2;
            }
        }
    }
    for r in 0..h {
        for c in 0..w {
            let line = boxed.slice(s![.., r, c]);
            if let (Some(a), Some(b)) =
                (line.iter().position(|&v| v), line.iter().rposition(|&v| v))
            {
                extreme[[a, r, c]] |= 1;
                extreme[[b, r, c]] |= 1;
            }
        }
    }
    let mut points: Vec<[f64; 3]> = extreme
        .indexed_iter()
        .filter(|&(_, &bits)| bits == 7)
        .map(|((k, r, c), _)| {
            grid.voxel_to_patient([(lo[0] + k) as f64, (lo[1] + r) as f64, (lo[2] + c) as f64])
        })
        .collect();
    let exact = points.len() <= MAX_DIAMETER_POINTS;
    if !exact {
        let stride = points.len().div_ceil(MAX_DIAMETER_POINTS);
        points = points.into_iter().step_by(stride).collect();
    }
    Some(Diameter {
        mm: farthest_pair_distance(&points),
        exact,
    })
}

/// The largest pairwise distance of `points` (0 for fewer than two), by comparing every
/// pair: the caller bounds the count.
pub(crate) fn farthest_pair_distance(points: &[[f64; 3]]) -> f64 {
    let mut best = 0.0_f64;
    for (i, p) in points.iter().enumerate() {
        for q in &points[i + 1..] {
            let d2 = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
            best = best.max(d2);
        }
    }
    best.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(shape: [usize; 3], spacing: [f64; 3]) -> Grid {
        Grid {
            origin: [10.0, -20.0, 5.0],
            row_dir: [1.0, 0.0, 0.0],
            col_dir: [0.0, 1.0, 0.0],
            normal: [0.0, 0.0, 1.0],
            spacing,
            shape,
            frame_of_reference_uid: "1.2.3".into(),
        }
    }

    #[test]
    fn a_box_measures_its_space_diagonal() {
        // Voxels 2..=6 x 3..=5 x 1..=9 (index), spacing 2 x 1 x 0.5 mm: the centres span
        // 8 x 2 x 4 mm.
        let g = grid([10, 10, 12], [2.0, 1.0, 0.5]);
        let mut mask = Array3::from_elem((10, 10, 12), false);
        mask.slice_mut(s![2..7, 3..6, 1..10]).fill(true);
        let m = measure(&mask, &g);
        let want = (8.0_f64.powi(2) + 2.0_f64.powi(2) + 4.0_f64.powi(2)).sqrt();
        let d = m.diameter.unwrap();
        assert!((d.mm - want).abs() < 1e-9, "{} vs {want}", d.mm);
        assert!(d.exact);
        assert_eq!(m.components, 1);
        assert!((m.volume_ml - 5.0 * 3.0 * 9.0 * 1.0 / 1000.0).abs() < 1e-12);
        let percent = 135.0 / 1200.0 * 100.0;
        assert!((m.volume_percent - percent).abs() < 1e-9);
    }

    #[test]
    fn a_sphere_measures_close_to_twice_its_radius_in_any_orientation() {
        // An oblique grid: the diameter is measured in patient mm, not in index steps.
        let (c, s30) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let mut g = grid([40, 40, 40], [1.0, 1.0, 1.0]);
        g.row_dir = [c, s30, 0.0];
        g.col_dir = [-s30, c, 0.0];
        let r = 12.0;
        let mask = Array3::from_shape_fn((40, 40, 40), |(k, i, j)| {
            let d2 =
                (k as f64 - 20.0).powi(2) + (i as f64 - 19.5).powi(2) + (j as f64 - 20.3).powi(2);
            d2 <= r * r
        });
        let d = longest_diameter(&mask, &g).unwrap();
        assert!(d.mm <= 2.0 * r && d.mm > 2.0 * r - 1.0, "{}", d.mm);
    }

    #[test]
    fn components_and_empty_masks() {
        let g = grid([5, 5, 5], [1.0, 1.0, 1.0]);
        let mut mask = Array3::from_elem((5, 5, 5), false);
        assert_eq!(longest_diameter(&mask, &g), None);
        assert_eq!(measure(&mask, &g).components, 0);
        mask[[0, 0, 0]] = true;
        assert_eq!(longest_diameter(&mask, &g).unwrap().mm, 0.0);
        mask[[4, 4, 4]] = true;
        let m = measure(&mask, &g);
        assert_eq!(m.components, 2);
        assert!((m.diameter.unwrap().mm - 48f64.sqrt()).abs() < 1e-12);
    }
}
