//! Stacking the channel series into one `[C, slice, row, col]` array on the grid of the
//! first series, resampling (trilinear, in patient coordinates) those whose grid differs.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array3, Array4};
use tracing::warn;

use super::grid::{Grid, matvec};
use super::{SeriesVolume, VolumeError, parallel};

/// What became of one input series in a [`ChannelStack`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    /// Series Instance UID of the channel's series.
    pub series_uid: String,
    /// Its SeriesDescription, for logs and reports.
    pub description: String,
    /// Whether it was resampled onto the reference grid (its own grid differed).
    pub resampled: bool,
    /// How its grid differed from the reference, when it was resampled.
    pub resample_reason: Option<String>,
}

/// The channels of one job on one grid: the model input before preprocessing.
#[derive(Debug, Clone)]
pub struct ChannelStack {
    /// Channel 0, whose grid every channel is on and whose slices the SEG is drawn on.
    /// Its `voxels` are moved into `data[0]` (left with shape `[0, 0, 0]`) so the volume
    /// is held once; its `geometry` and `grid` are intact.
    pub reference: SeriesVolume,
    /// `[C, slice, row, col]` voxel values on `reference.grid`, channels in input order.
    pub data: Array4<f32>,
    /// One entry per channel, in input order.
    pub channels: Vec<ChannelInfo>,
}

/// Stack `series` (channel order) onto the grid of `series[0]`. A channel whose grid
/// matches within `tol_mm` (see [`Grid::same_as`]) is taken as is; one whose grid differs
/// (another resolution, slice count, orientation or position) is resampled trilinearly in
/// patient coordinates, voxels outside it becoming 0, with a warning naming the series and
/// the difference. Channels in another frame of reference are an error.
pub fn stack_channels(series: Vec<SeriesVolume>, tol_mm: f64) -> Result<ChannelStack, VolumeError> {
    let count = series.len();
    let mut series = series.into_iter();
    let mut reference = series.next().ok_or(VolumeError::NoChannels)?;
    let grid = reference.grid.clone();
    let len = grid.len();
    let [d, h, w] = grid.shape;
    let mut data = Array4::<f32>::zeros((count, d, h, w));
    let mut slots = data
        .as_slice_mut()
        .expect("fresh array is contiguous")
        .chunks_mut(len.max(1));
    let reference_voxels = std::mem::replace(&mut reference.voxels, Array3::zeros((0, 0, 0)));
    copy_into(slots.next().unwrap_or_default(), &reference_voxels);
    drop(reference_voxels);
    let mut channels = vec![ChannelInfo {
        series_uid: reference.series_uid.clone(),
        description: reference.description.clone(),
        resampled: false,
        resample_reason: None,
    }];
    for volume in series {
        if volume.grid.frame_of_reference_uid != grid.frame_of_reference_uid {
            return Err(VolumeError::FrameOfReference {
                reference: reference.series_uid.clone(),
                reference_frame: grid.frame_of_reference_uid.clone(),
                series: volume.series_uid,
                series_frame: volume.grid.frame_of_reference_uid,
            });
        }
        let slot = slots.next().unwrap_or_default();
        let mut info = ChannelInfo {
            series_uid: volume.series_uid.clone(),
            description: volume.description.clone(),
            resampled: false,
            resample_reason: None,
        };
        if volume.grid.same_as(&grid, tol_mm) {
            copy_into(slot, &volume.voxels);
        } else {
            let reason = grid.describe_difference(&volume.grid);
            let inside = resample_into(slot, &volume.voxels, &volume.grid, &grid);
            if inside == 0 {
                return Err(VolumeError::NoOverlap {
                    reference: reference.series_uid.clone(),
                    series: volume.series_uid,
                });
            }
            warn!(
                series = %volume.series_uid,
                description = %volume.description,
                reference = %reference.series_uid,
                difference = %reason,
                coverage_percent = 100.0 * inside as f64 / len as f64,
                "channel grid differs from the reference series; resampled trilinearly onto the reference grid"
            );
            info.resampled = true;
            info.resample_reason = Some(reason);
        }
        channels.push(info);
    }
    Ok(ChannelStack {
        reference,
        data,
        channels,
    })
}

/// Copy an array's values in logical (row-major) order into `slot`, in parallel.
fn copy_into(slot: &mut [f32], voxels: &Array3<f32>) {
    let voxels = voxels.as_standard_layout();
    let src = voxels.as_slice().expect("standard layout");
    parallel::for_each_chunk(slot, 1, |first, chunk| {
        chunk.copy_from_slice(&src[first..first + chunk.len()])
    });
}

/// [`resample_into`] into a new array; returns it and the number of target voxels inside
/// the source.
#[cfg(test)]
fn resample_onto(voxels: &Array3<f32>, source: &Grid, target: &Grid) -> (Array3<f32>, usize) {
    let mut out = vec![0.0_f32; target.len()];
    let inside = resample_into(&mut out, voxels, source, target);
    let out = Array3::from_shape_vec(target.shape, out).expect("target shape");
    (out, inside)
}

/// Trilinear resampling of `voxels` (on `source`) at every voxel centre of `target`, into
/// `out` (row-major, `target.shape`, zeroed). A target voxel is inside the source when its
/// continuous source index lies within the source voxels' extent, `[-0.5, n - 0.5]` per
/// axis; there the value is interpolated between the nearest centres (held constant in the
/// outer half voxel); outside it stays 0. Returns the number of target voxels inside.
fn resample_into(out: &mut [f32], voxels: &Array3<f32>, source: &Grid, target: &Grid) -> usize {
    let voxels = voxels.as_standard_layout();
    let src = voxels.as_slice().expect("standard layout");
    let shape = source.shape;
    let (a, b) = target.index_map_to(source);
    let step = [a[0][2], a[1][2], a[2][2]];
    let [_, th, tw] = target.shape;
    let inside = AtomicUsize::new(0);
    parallel::for_each_chunk(out, tw.max(1), |first_row, chunk| {
        let mut count = 0;
        for (i, row) in chunk.chunks_mut(tw.max(1)).enumerate() {
            let line = first_row + i;
            let (k, r) = (line / th, line % th);
            let base = matvec(&a, [k as f64, r as f64, 0.0]);
            for (c, v) in row.iter_mut().enumerate() {
                let s: [f64; 3] = std::array::from_fn(|d| base[d] + b[d] + c as f64 * step[d]);
                if let Some(value) = trilinear(src, shape, s) {
                    *v = value;
                    count += 1;
                }
            }
        }
        inside.fetch_add(count, Ordering::Relaxed);
    });
    inside.into_inner()
}

/// Interpolate at continuous index `s`, or `None` outside the voxels' extent.
#[inline]
fn trilinear(src: &[f32], shape: [usize; 3], s: [f64; 3]) -> Option<f32> {
    const EDGE: f64 = 0.5 + 1e-6;
    let mut i0 = [0_usize; 3];
    let mut i1 = [0_usize; 3];
    let mut w = [0_f32; 3];
    for d in 0..3 {
        let n = shape[d];
        if n == 0 || s[d] < -EDGE || s[d] > n as f64 - 1.0 + EDGE {
            return None;
        }
        let x = s[d].clamp(0.0, (n - 1) as f64);
        let f = (x.floor() as usize).min(n - 1);
        i0[d] = f;
        i1[d] = (f + 1).min(n - 1);
        w[d] = (x - f as f64) as f32;
    }
    let at = |k: usize, r: usize, c: usize| src[(k * shape[1] + r) * shape[2] + c];
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let c00 = lerp(at(i0[0], i0[1], i0[2]), at(i0[0], i0[1], i1[2]), w[2]);
    let c01 = lerp(at(i0[0], i1[1], i0[2]), at(i0[0], i1[1], i1[2]), w[2]);
    let c10 = lerp(at(i1[0], i0[1], i0[2]), at(i1[0], i0[1], i1[2]), w[2]);
    let c11 = lerp(at(i1[0], i1[1], i0[2]), at(i1[0], i1[1], i1[2]), w[2]);
    Some(lerp(lerp(c00, c01, w[1]), lerp(c10, c11, w[1]), w[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(shape: [usize; 3], spacing: [f64; 3], origin: [f64; 3]) -> Grid {
        Grid {
            origin,
            row_dir: [1.0, 0.0, 0.0],
            col_dir: [0.0, 1.0, 0.0],
            normal: [0.0, 0.0, 1.0],
            spacing,
            shape,
            frame_of_reference_uid: "1.2.3".into(),
        }
    }

    #[test]
    fn resampling_onto_itself_is_identity() {
        let g = grid([3, 4, 5], [2.0, 1.0, 1.0], [0.0; 3]);
        let v = Array3::from_shape_fn(g.shape, |(k, r, c)| (k * 100 + r * 10 + c) as f32);
        let (out, inside) = resample_onto(&v, &g, &g);
        assert_eq!(inside, g.len());
        assert_eq!(out, v);
    }

    #[test]
    fn resampling_reproduces_a_linear_ramp_and_zeroes_outside() {
        // Source: 2 mm pixels; target: 1 mm pixels over the same field and 3 more columns
        // past its right edge.
        let ramp = |p: [f64; 3]| (1000.0 + 3.0 * p[0] - 2.0 * p[1] + 5.0 * p[2]) as f32;
        let source = grid([4, 8, 8], [2.0, 2.0, 2.0], [0.5, 0.5, 0.0]);
        let target = grid([4, 16, 19], [2.0, 1.0, 1.0], [0.0, 0.0, 0.0]);
        let v = Array3::from_shape_fn(source.shape, |(k, r, c)| {
            ramp(source.voxel_to_patient([k as f64, r as f64, c as f64]))
        });
        let (out, inside) = resample_onto(&v, &source, &target);
        assert_eq!(inside, 4 * 16 * 16);
        for ((k, r, c), value) in out.indexed_iter() {
            let p = target.voxel_to_patient([k as f64, r as f64, c as f64]);
            let s = source.patient_to_voxel(p);
            if c >= 16 {
                assert_eq!(*value, 0.0, "outside at {k},{r},{c}");
            } else if (0.0..=7.0).contains(&s[1]) && (0.0..=7.0).contains(&s[2]) {
                assert!(
                    (value - ramp(p)).abs() < 1e-3,
                    "{value} vs {} at {k},{r},{c}",
                    ramp(p)
                );
            } else {
                assert!(
                    *value != 0.0,
                    "edge voxel {k},{r},{c} inside the source extent"
                );
            }
        }
    }
}
