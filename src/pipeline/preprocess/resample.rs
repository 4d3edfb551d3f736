//! Resampling between the source grid and the model grid.
//!
//! Convention: PyTorch's `interpolate(mode="trilinear", align_corners=False)` (what MONAI's
//! `Resize` does in a linear mode unless told otherwise). Both grids cover the same field
//! of view: the *edges* of the outer voxels coincide. Along an axis with `n` source and `m` model voxels,
//! model index `j` lies at source index `(j + 0.5)·n/m − 0.5`, and source index `i` at
//! model index `(i + 0.5)·m/n − 0.5`: one affine map and its exact inverse, used both ways.
//! Positions beyond the outermost centres (within the outer half voxel) take the edge
//! value. Interpolation is linear along each axis in turn (separable; for this
//! axis-aligned map identical to trilinear), without anti-aliasing, as PyTorch does.

use std::borrow::Cow;

use ndarray::Array4;

use super::TargetGrid;
use crate::pipeline::volume::{Grid, parallel};

/// How the model grid relates to the source grid; returned by [`to_model_grid`] and
/// consumed by [`from_model_grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelGridMapping {
    /// The source (reference series) grid.
    pub source_grid: Grid,
    /// The model grid in patient coordinates: same orientation and field of view, voxel
    /// centres where the convention above puts them.
    pub model_grid: Grid,
}

impl ModelGridMapping {
    /// Build the mapping from `source` to `target`.
    ///
    /// # Panics
    /// If `target` fails [`TargetGrid::validate`] (validate configs at load).
    pub fn new(source: &Grid, target: &TargetGrid) -> Self {
        if let Err(reason) = target.validate() {
            panic!("invalid model target grid: {reason}");
        }
        let shape: [usize; 3] = match target {
            TargetGrid::Shape(s) => *s,
            TargetGrid::Spacing(t) => std::array::from_fn(|a| {
                ((source.shape[a] as f64 * source.spacing[a] / t[a]).round() as usize).max(1)
            }),
            TargetGrid::InPlane([rows, cols]) => [source.shape[0], *rows, *cols],
            TargetGrid::Native => source.shape,
        };
        let mut model_grid = source.clone();
        model_grid.shape = shape;
        model_grid.spacing =
            std::array::from_fn(|a| source.spacing[a] * ratio(source.shape[a], shape[a]));
        let mapping = ModelGridMapping {
            source_grid: source.clone(),
            model_grid,
        };
        let origin = source.voxel_to_patient(mapping.model_to_source([0.0; 3]));
        ModelGridMapping {
            model_grid: Grid {
                origin,
                ..mapping.model_grid
            },
            ..mapping
        }
    }

    /// Continuous source index of a model index.
    pub fn model_to_source(&self, idx: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|a| {
            map_index(idx[a], self.model_grid.shape[a], self.source_grid.shape[a])
        })
    }

    /// Continuous model index of a source index.
    pub fn source_to_model(&self, idx: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|a| {
            map_index(idx[a], self.source_grid.shape[a], self.model_grid.shape[a])
        })
    }
}

/// Source voxels per model voxel along an axis (`n / m`).
fn ratio(n: usize, m: usize) -> f64 {
    n as f64 / m.max(1) as f64
}

/// Index `i` on an axis of `from` voxels, expressed on an axis of `to` voxels over the same
/// extent.
fn map_index(i: f64, from: usize, to: usize) -> f64 {
    (i + 0.5) * ratio(to, from) - 0.5
}

/// Resample `data` (`[C, slice, row, col]` on `grid`) onto the model grid `target`.
///
/// # Panics
/// If `data`'s spatial shape is not `grid.shape`, or `target` is invalid.
pub fn to_model_grid(
    data: &Array4<f32>,
    grid: &Grid,
    target: &TargetGrid,
) -> (Array4<f32>, ModelGridMapping) {
    let d = data.shape();
    assert_eq!(
        [d[1], d[2], d[3]],
        grid.shape,
        "data shape {d:?} does not match its grid"
    );
    let mapping = ModelGridMapping::new(grid, target);
    let out = resample(data, mapping.model_grid.shape);
    (out, mapping)
}

/// Resample model output `prob` (`[K, d, h, w]` on `mapping.model_grid`) back onto every
/// voxel of the source grid: `[K, slices, rows, cols]`.
///
/// # Panics
/// If `prob`'s spatial shape is not the model grid's.
pub fn from_model_grid(prob: &Array4<f32>, mapping: &ModelGridMapping) -> Array4<f32> {
    let d = prob.shape();
    assert_eq!(
        [d[1], d[2], d[3]],
        mapping.model_grid.shape,
        "model output shape {d:?} does not match the model grid"
    );
    resample(prob, mapping.source_grid.shape)
}

/// Separable linear resampling of the three spatial axes to `shape`; axes that shrink most
/// go first so later passes touch fewer voxels. Axes that keep their length are copied
/// exactly.
fn resample(data: &Array4<f32>, shape: [usize; 3]) -> Array4<f32> {
    let s = data.shape();
    let mut current_shape = [s[0], s[1], s[2], s[3]];
    let mut current: Cow<'_, [f32]> = match data.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(data.iter().copied().collect()),
    };
    let mut axes: Vec<usize> = (0..3)
        .filter(|&a| shape[a] != current_shape[a + 1])
        .collect();
    axes.sort_by(|&a, &b| {
        ratio(shape[a], current_shape[a + 1]).total_cmp(&ratio(shape[b], current_shape[b + 1]))
    });
    for a in axes {
        let (next, next_shape) = resample_axis(&current, current_shape, a + 1, shape[a]);
        current = Cow::Owned(next);
        current_shape = next_shape;
    }
    Array4::from_shape_vec(current_shape, current.into_owned()).expect("resampled shape")
}

/// One output position along an axis: `in[i0] + (in[i1] - in[i0]) * w`.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w: f32,
}

fn taps(n: usize, m: usize) -> Vec<Tap> {
    (0..m)
        .map(|j| {
            let x = map_index(j as f64, m, n).clamp(0.0, (n - 1) as f64);
            let i0 = (x.floor() as usize).min(n - 1);
            Tap {
                i0,
                i1: (i0 + 1).min(n - 1),
                w: (x - i0 as f64) as f32,
            }
        })
        .collect()
}

/// Resample axis `axis` of a row-major `shape` array to `m` positions.
fn resample_axis(
    input: &[f32],
    shape: [usize; 4],
    axis: usize,
    m: usize,
) -> (Vec<f32>, [usize; 4]) {
    let n = shape[axis];
    let taps = taps(n, m);
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0_f32; outer * m * inner];
    if inner == 1 {
        // The contiguous axis: gather per element, one input row per output row.
        parallel::for_each_chunk(&mut out, m, |first, chunk| {
            for (o, row) in chunk.chunks_mut(m).enumerate() {
                let src = &input[(first + o) * n..][..n];
                for (v, t) in row.iter_mut().zip(&taps) {
                    let a = src[t.i0];
                    *v = a + (src[t.i1] - a) * t.w;
                }
            }
        });
    } else {
        // An outer axis: each output line blends two contiguous input lines.
        parallel::for_each_chunk(&mut out, inner, |first, chunk| {
            for (l, line) in chunk.chunks_mut(inner).enumerate() {
                let (o, j) = ((first + l) / m, (first + l) % m);
                let t = taps[j];
                let a = &input[(o * n + t.i0) * inner..][..inner];
                if t.w == 0.0 {
                    line.copy_from_slice(a);
                    continue;
                }
                let b = &input[(o * n + t.i1) * inner..][..inner];
                for ((v, &x), &y) in line.iter_mut().zip(a).zip(b) {
                    *v = x + (y - x) * t.w;
                }
            }
        });
    }
    let mut out_shape = shape;
    out_shape[axis] = m;
    (out, out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(shape: [usize; 3]) -> Grid {
        Grid {
            origin: [-20.0, 10.0, 5.0],
            row_dir: [0.0, 1.0, 0.0],
            col_dir: [0.0, 0.0, -1.0],
            normal: [-1.0, 0.0, 0.0],
            spacing: [1.5, 0.7, 0.7],
            shape,
            frame_of_reference_uid: "1.2.3".into(),
        }
    }

    fn field(shape: [usize; 4], f: impl Fn(f64, f64, f64) -> f64) -> Array4<f32> {
        Array4::from_shape_fn(shape, |(_, k, r, c)| f(k as f64, r as f64, c as f64) as f32)
    }

    #[test]
    fn same_shape_is_identity() {
        let g = grid([5, 6, 7]);
        let d = field([2, 5, 6, 7], |k, r, c| k * 100.0 + r * 10.0 + c);
        for target in [
            TargetGrid::Shape([5, 6, 7]),
            TargetGrid::Native,
            TargetGrid::Spacing(g.spacing),
        ] {
            let (out, mapping) = to_model_grid(&d, &g, &target);
            assert_eq!(out, d);
            assert_eq!(mapping.model_grid, g);
            assert_eq!(from_model_grid(&out, &mapping), d);
        }
    }

    #[test]
    fn model_voxels_sample_the_source_where_the_mapping_says() {
        let g = grid([12, 40, 30]);
        let d = field([1, 12, 40, 30], |k, r, c| k * 1000.0 + r * 10.0 - c);
        let (out, mapping) = to_model_grid(&d, &g, &TargetGrid::Shape([9, 24, 45]));
        assert_eq!(out.shape(), &[1, 9, 24, 45]);
        for ((_, k, r, c), v) in out.indexed_iter() {
            let j = [k as f64, r as f64, c as f64];
            let s = mapping.model_to_source(j);
            let s: Vec<f64> = s
                .iter()
                .zip(g.shape)
                .map(|(x, n)| x.clamp(0.0, n as f64 - 1.0))
                .collect();
            let expected = s[0] * 1000.0 + s[1] * 10.0 - s[2];
            assert!(
                (f64::from(*v) - expected).abs() < 1e-2,
                "{v} vs {expected} at {j:?}"
            );
            // The model grid's patient geometry agrees with the index mapping.
            let p = mapping.model_grid.voxel_to_patient(j);
            let q = g.voxel_to_patient(mapping.model_to_source(j));
            assert!((0..3).all(|a| (p[a] - q[a]).abs() < 1e-9));
            let back = mapping.source_to_model(mapping.model_to_source(j));
            assert!((0..3).all(|a| (back[a] - j[a]).abs() < 1e-9));
        }
        // Same field of view: the outer voxel edges coincide.
        let m = &mapping.model_grid;
        let first_edge = m.voxel_to_patient([-0.5, -0.5, -0.5]);
        let source_edge = g.voxel_to_patient([-0.5, -0.5, -0.5]);
        assert!((0..3).all(|a| (first_edge[a] - source_edge[a]).abs() < 1e-9));
    }

    #[test]
    fn spacing_target_rounds_the_shape_and_keeps_the_field_of_view() {
        let g = grid([10, 100, 100]);
        let mapping = ModelGridMapping::new(&g, &TargetGrid::Spacing([3.0, 1.0, 1.0]));
        assert_eq!(mapping.model_grid.shape, [5, 70, 70]);
        assert!((mapping.model_grid.spacing[1] - 1.0).abs() < 1e-12);
        let mapping = ModelGridMapping::new(&g, &TargetGrid::Spacing([1.0, 0.9, 0.9]));
        assert_eq!(mapping.model_grid.shape, [15, 78, 78]);
        assert!((mapping.model_grid.spacing[1] * 78.0 - 70.0).abs() < 1e-9);
    }

    #[test]
    fn round_trip_through_96_cubed_preserves_a_smooth_field() {
        let g = grid([48, 128, 128]);
        let f = |k: f64, r: f64, c: f64| {
            (k / 9.0).sin() + (r / 20.0).cos() + (c / 25.0).sin() * (r / 40.0).cos()
        };
        let d = field([2, 48, 128, 128], f);
        let (model, mapping) = to_model_grid(&d, &g, &TargetGrid::Shape([96, 96, 96]));
        assert_eq!(model.shape(), &[2, 96, 96, 96]);
        let back = from_model_grid(&model, &mapping);
        assert_eq!(back.shape(), d.shape());
        // The outermost voxels interpolate towards an edge value held over the outer half
        // model voxel (the convention), so they get a looser bound.
        let (mut worst_inner, mut worst_edge) = (0.0_f32, 0.0_f32);
        for ((ch, k, r, c), v) in back.indexed_iter() {
            let err = (v - d[[ch, k, r, c]]).abs();
            if k == 0 || k == 47 || r == 0 || r == 127 || c == 0 || c == 127 {
                worst_edge = worst_edge.max(err);
            } else {
                worst_inner = worst_inner.max(err);
            }
        }
        assert!(worst_inner < 0.005, "round trip error {worst_inner}");
        assert!(
            worst_edge < 0.03,
            "round trip error at the border {worst_edge}"
        );
        // A linear ramp comes back exactly away from the clamped outer half voxels.
        let ramp = field([1, 48, 128, 128], |k, r, c| 2.0 * k + r - 0.5 * c);
        let (model, mapping) = to_model_grid(&ramp, &g, &TargetGrid::Shape([96, 96, 96]));
        let back = from_model_grid(&model, &mapping);
        for ((_, k, r, c), v) in back.indexed_iter() {
            if (1..47).contains(&k) && (1..127).contains(&r) && (1..127).contains(&c) {
                assert!(
                    (v - ramp[[0, k, r, c]]).abs() < 1e-3,
                    "ramp at {k},{r},{c}: {v}"
                );
            }
        }
    }
}
