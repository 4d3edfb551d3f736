//! Post-processing of model output on the source grid: threshold, 3D morphology and
//! connected components, and the numbers reported with the SEG.
//!
//! Connectivity: foreground components are **26-connected** (voxels touching by a face,
//! edge or corner belong together); background, for hole filling, is **6-connected** (the
//! complementary pair, so a foreground shell that is closed through corners encloses its
//! inside). Erosion and dilation use the 6-connected cross iterated `radius` times, i.e.
//! the city-block ball of that radius in voxels (`scipy.ndimage.binary_erosion(…,
//! iterations=radius)` with its default structure); voxels beyond the volume border count
//! as background.
//!
//! Every step works inside the bounding box of the foreground (grown as needed), with
//! iterative, heap-allocated queues: no recursion, bounded by the mask size.

mod components;
mod morphology;

use ndarray::{Array3, ArrayBase, Data, Ix3};
use serde::{Deserialize, Serialize};

use crate::pipeline::volume::{Grid, parallel};

/// One post-processing step, applied in the order given.
///
/// In config files: `{ erode = { radius = 1 } }`, `{ erode = { radius = 1, shape = "cube" } }`
/// (3x3x3), `{ dilate = { radius = 1 } }`, `"fill_holes"`, `"keep_largest"`,
/// `{ min_component_voxels = 50 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PostStep {
    /// Remove every voxel within distance `radius` of background (city-block for the
    /// cross, chessboard for the cube).
    Erode {
        /// Radius in voxels (0 does nothing).
        radius: usize,
        /// Structuring element; the 6-connected cross unless `"cube"` (3x3x3).
        #[serde(default)]
        shape: Structure,
    },
    /// Add every voxel within distance `radius` of foreground.
    Dilate {
        /// Radius in voxels (0 does nothing).
        radius: usize,
        /// Structuring element; the 6-connected cross unless `"cube"` (3x3x3).
        #[serde(default)]
        shape: Structure,
    },
    /// Set every background voxel not 6-connected to the volume border (cavities).
    FillHoles,
    /// Keep only the largest 26-connected component (the first in raster order on ties).
    KeepLargest,
    /// Remove 26-connected components with fewer voxels than this.
    MinComponentVoxels(usize),
}

/// The structuring element of erosion and dilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Structure {
    /// The 6-connected cross (scipy's default).
    #[default]
    Cross,
    /// The 3x3x3 cube (26-connected).
    Cube,
}

/// `prob >= t` per voxel. Takes any 3-D array or view (`&Array3<f32>`, or a channel of
/// the model output without copying it).
pub fn threshold<S: Data<Elem = f32>>(prob: &ArrayBase<S, Ix3>, t: f32) -> Array3<bool> {
    let prob = prob.as_standard_layout();
    let src = prob.as_slice().expect("standard layout");
    let mut out = vec![false; src.len()];
    parallel::for_each_chunk(&mut out, 1, |first, chunk| {
        for (o, &p) in chunk.iter_mut().zip(&src[first..]) {
            *o = p >= t;
        }
    });
    Array3::from_shape_vec(prob.raw_dim(), out).expect("same shape")
}

/// Which neighbours a step looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Across slices too: the mask is a volume.
    Volume,
    /// Within the slice only: each slice is an image of its own (2D pipelines).
    InPlane,
}

/// Apply `steps` to `mask` (a volume) in order.
pub fn apply(mask: &mut Array3<bool>, steps: &[PostStep]) {
    apply_within(mask, steps, Reach::Volume);
}

/// Apply `steps` to each slice of `mask` on its own, as 2D images: erosion, dilation and
/// hole filling stay within the slice, and components (8-connected in the plane) are
/// counted per slice, so `keep_largest` keeps the largest of every frame of a cine.
pub fn apply_in_plane(mask: &mut Array3<bool>, steps: &[PostStep]) {
    for mut slice in mask.outer_iter_mut() {
        let mut frame = slice.to_owned().insert_axis(ndarray::Axis(0));
        apply_within(&mut frame, steps, Reach::InPlane);
        slice.assign(&frame.index_axis(ndarray::Axis(0), 0));
    }
}

fn apply_within(mask: &mut Array3<bool>, steps: &[PostStep], reach: Reach) {
    for step in steps {
        match *step {
            PostStep::Erode { radius, shape } => {
                morphology::erode_within(mask, radius, shape, reach)
            }
            PostStep::Dilate { radius, shape } => {
                morphology::dilate_within(mask, radius, shape, reach)
            }
            PostStep::FillHoles => components::fill_holes_within(mask, reach),
            PostStep::KeepLargest => components::keep_largest(mask),
            PostStep::MinComponentVoxels(min) => components::remove_smaller_than(mask, min),
        }
    }
}

/// The number of 26-connected foreground components of `mask` (a volume).
pub fn component_count(mask: &Array3<bool>) -> usize {
    components::count(mask)
}

/// What a mask amounts to, for the job log and report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Findings {
    /// Foreground voxels (pixels, for images).
    pub voxels: u64,
    /// Foreground volume in millilitres (voxels × voxel volume); volumes only.
    pub volume_ml: Option<f64>,
    /// Foreground area in mm² per frame (the mean over the frames of a cine); images whose
    /// pixel size is known only.
    pub area_mm2: Option<f64>,
    /// Foreground voxels as a percentage of all voxels of the volume (pixels of the image).
    pub fraction_percent: f64,
}

/// Count the foreground of `mask` (on `grid`).
///
/// # Panics
/// If `mask`'s shape is not `grid.shape`.
pub fn findings(mask: &Array3<bool>, grid: &Grid) -> Findings {
    let s = mask.shape();
    assert_eq!(
        [s[0], s[1], s[2]],
        grid.shape,
        "mask shape does not match its grid"
    );
    let voxels = mask.iter().filter(|&&v| v).count() as u64;
    Findings {
        voxels,
        volume_ml: Some(voxels as f64 * grid.voxel_volume_mm3() / 1000.0),
        area_mm2: None,
        fraction_percent: percent(voxels, mask.len()),
    }
}

/// Count the foreground of the frames of an image (`[frames, rows, columns]`); with the
/// pixel area known, the area per frame in mm².
pub fn image_findings(mask: &Array3<bool>, pixel_area_mm2: Option<f64>) -> Findings {
    let voxels = mask.iter().filter(|&&v| v).count() as u64;
    let frames = mask.shape()[0].max(1) as f64;
    Findings {
        voxels,
        volume_ml: None,
        area_mm2: pixel_area_mm2.map(|a| voxels as f64 * a / frames),
        fraction_percent: percent(voxels, mask.len()),
    }
}

fn percent(part: u64, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

impl Findings {
    /// The size in the unit that fits: `12.34 mL`, `567.8 mm²` or `1234 pixels`.
    pub fn size(&self) -> String {
        match (self.volume_ml, self.area_mm2) {
            (Some(ml), _) => format!("{ml:.2} mL"),
            (None, Some(mm2)) => format!("{mm2:.1} mm²"),
            (None, None) => format!("{} pixels", self.voxels),
        }
    }

    /// As JSON for the job record: label, voxels, the size fields that apply, fraction.
    pub fn to_json(&self, label: &str) -> serde_json::Value {
        let mut v = serde_json::json!({ "label": label, "voxels": self.voxels });
        if let Some(ml) = self.volume_ml {
            v["volume_ml"] = serde_json::json!(ml);
        }
        if let Some(mm2) = self.area_mm2 {
            v["area_mm2"] = serde_json::json!(mm2);
        }
        v["fraction_percent"] = serde_json::json!(self.fraction_percent);
        v
    }
}

/// The bounding box `[lo, hi)` of the foreground, grown by `margin` and clipped to the
/// volume; `None` when the mask is empty.
pub(crate) fn bounding_box(mask: &Array3<bool>, margin: usize) -> Option<([usize; 3], [usize; 3])> {
    let shape = [mask.shape()[0], mask.shape()[1], mask.shape()[2]];
    let mut lo = shape;
    let mut hi = [0; 3];
    for (k, slice) in mask.outer_iter().enumerate() {
        for (r, row) in slice.outer_iter().enumerate() {
            let first = match row.as_slice() {
                Some(s) => s.iter().position(|&v| v),
                None => row.iter().position(|&v| v),
            };
            let Some(first) = first else { continue };
            let last = row.iter().rposition(|&v| v).unwrap_or(first);
            let (l, h) = ([k, r, first], [k + 1, r + 1, last + 1]);
            for a in 0..3 {
                lo[a] = lo[a].min(l[a]);
                hi[a] = hi[a].max(h[a]);
            }
        }
    }
    if hi[0] == 0 {
        return None;
    }
    Some((
        std::array::from_fn(|a| lo[a].saturating_sub(margin)),
        std::array::from_fn(|a| (hi[a] + margin).min(shape[a])),
    ))
}

/// A box of the mask copied out as a dense row-major `u8` buffer (1 = foreground) with
/// one voxel of padding on every side, so the steps reach all neighbours of a box voxel
/// with fixed index offsets, without bounds checks or divisions.
pub(crate) struct Crop {
    /// First voxel of the box in the mask.
    lo: [usize; 3],
    /// Box shape (without the padding).
    pub(crate) dims: [usize; 3],
    /// Padded voxels, `(d + 2) x (h + 2) x (w + 2)`; the padding is 0 unless a step says
    /// otherwise, and is never written back.
    pub(crate) voxels: Vec<u8>,
}

impl Crop {
    /// Copy out the foreground bounding box grown by `margin`; `None` for an empty mask.
    pub(crate) fn around_foreground(mask: &Array3<bool>, margin: usize) -> Option<Crop> {
        let (lo, hi) = bounding_box(mask, margin)?;
        let dims: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a]);
        let mut crop = Crop {
            lo,
            dims,
            voxels: Vec::new(),
        };
        crop.voxels = vec![0; crop.padded_len()];
        let [mh, mw] = [mask.shape()[1], mask.shape()[2]];
        let contiguous = mask.as_slice();
        for k in 0..dims[0] {
            for r in 0..dims[1] {
                let start = crop.index(k, r, 0);
                let dst = &mut crop.voxels[start..start + dims[2]];
                match contiguous {
                    Some(all) => {
                        let from = ((lo[0] + k) * mh + lo[1] + r) * mw + lo[2];
                        let row = &all[from..from + dims[2]];
                        dst.iter_mut().zip(row).for_each(|(d, &s)| *d = u8::from(s));
                    }
                    None => {
                        let row = mask.slice(ndarray::s![lo[0] + k, lo[1] + r, lo[2]..hi[2]]);
                        dst.iter_mut()
                            .zip(&row)
                            .for_each(|(d, &s)| *d = u8::from(s));
                    }
                }
            }
        }
        Some(crop)
    }

    /// Write the box (not the padding) back into `mask`: voxels for which `foreground`
    /// holds become true, all others false.
    pub(crate) fn store(&self, mask: &mut Array3<bool>, foreground: impl Fn(u8) -> bool) {
        let [d, h, w] = self.dims;
        let lo = self.lo;
        let [mh, mw] = [mask.shape()[1], mask.shape()[2]];
        for k in 0..d {
            for r in 0..h {
                let start = self.index(k, r, 0);
                let src = &self.voxels[start..start + w];
                match mask.as_slice_mut() {
                    Some(all) => {
                        let from = ((lo[0] + k) * mh + lo[1] + r) * mw + lo[2];
                        let row = &mut all[from..from + w];
                        row.iter_mut()
                            .zip(src)
                            .for_each(|(d, &s)| *d = foreground(s));
                    }
                    None => {
                        let mut row =
                            mask.slice_mut(ndarray::s![lo[0] + k, lo[1] + r, lo[2]..lo[2] + w]);
                        row.iter_mut()
                            .zip(src)
                            .for_each(|(d, &s)| *d = foreground(s));
                    }
                }
            }
        }
    }

    /// Padded buffer index of box voxel `[k, r, c]` (box coordinates, from 0).
    pub(crate) fn index(&self, k: usize, r: usize, c: usize) -> usize {
        let [_, ph, pw] = self.padded_dims();
        ((k + 1) * ph + r + 1) * pw + c + 1
    }

    /// Shape of the padded buffer.
    pub(crate) fn padded_dims(&self) -> [usize; 3] {
        self.dims.map(|n| n + 2)
    }

    fn padded_len(&self) -> usize {
        self.padded_dims().iter().product()
    }

    /// Index offsets of the 6 face neighbours in the padded buffer.
    pub(crate) fn face_offsets(&self) -> [isize; 6] {
        let [_, ph, pw] = self.padded_dims();
        let (plane, row) = ((ph * pw) as isize, pw as isize);
        [-plane, plane, -row, row, -1, 1]
    }

    /// The face neighbours `reach` allows, in ± pairs per axis: all six, or the four
    /// within the slice.
    pub(crate) fn neighbour_offsets(&self, reach: Reach) -> Vec<isize> {
        let all = self.face_offsets();
        match reach {
            Reach::Volume => all.to_vec(),
            Reach::InPlane => all[2..].to_vec(),
        }
    }
}

/// `base + offset` for a neighbour offset that stays inside the padded buffer.
#[inline]
pub(crate) fn step(base: usize, offset: isize) -> usize {
    base.wrapping_add_signed(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two frames of a cine: a ring (hole inside) and a big plus a small blob in frame 0,
    /// a small blob only in frame 1.
    fn cine() -> Array3<bool> {
        let mut m = Array3::from_elem((2, 9, 9), false);
        for r in 1..6 {
            for c in 1..6 {
                m[[0, r, c]] = r == 1 || r == 5 || c == 1 || c == 5;
            }
        }
        m[[0, 8, 8]] = true;
        m[[1, 7, 7]] = true;
        m[[1, 7, 8]] = true;
        m
    }

    #[test]
    fn in_plane_steps_treat_each_frame_as_an_image() {
        let mut m = cine();
        apply_in_plane(&mut m, &[PostStep::FillHoles, PostStep::KeepLargest]);
        // Frame 0: the ring is filled (25 pixels) and the stray pixel dropped; frame 1
        // keeps its own largest (its only) component although frame 0's is bigger.
        assert_eq!(
            m.index_axis(ndarray::Axis(0), 0)
                .iter()
                .filter(|&&v| v)
                .count(),
            25
        );
        assert!(!m[[0, 8, 8]]);
        assert!(m[[1, 7, 7]] && m[[1, 7, 8]]);

        // A volume-wide fill finds no hole in a 1-frame-deep mask: every background voxel
        // touches the front or back face. In-plane filling does.
        let mut one = cine().slice(ndarray::s![0..1, .., ..]).to_owned();
        apply(&mut one, &[PostStep::FillHoles]);
        assert!(!one[[0, 3, 3]]);
        apply_in_plane(&mut one, &[PostStep::FillHoles]);
        assert!(one[[0, 3, 3]]);
    }

    #[test]
    fn in_plane_erosion_keeps_what_a_2d_erosion_keeps() {
        let mut m = Array3::from_elem((1, 7, 7), false);
        m.slice_mut(ndarray::s![0, 1..6, 1..6]).fill(true);
        let mut volume = m.clone();
        apply(
            &mut volume,
            &[PostStep::Erode {
                radius: 1,
                shape: Structure::Cross,
            }],
        );
        assert!(volume.iter().all(|&v| !v), "a 1-deep volume erodes away");
        apply_in_plane(
            &mut m,
            &[PostStep::Erode {
                radius: 1,
                shape: Structure::Cross,
            }],
        );
        assert_eq!(m.iter().filter(|&&v| v).count(), 9, "the 3x3 core stays");
        apply_in_plane(
            &mut m,
            &[PostStep::Dilate {
                radius: 1,
                shape: Structure::Cube,
            }],
        );
        assert_eq!(m.iter().filter(|&&v| v).count(), 25);
    }

    #[test]
    fn image_findings_give_the_area_per_frame() {
        let m = cine();
        let f = image_findings(&m, Some(0.04));
        assert_eq!(f.voxels, 19);
        assert_eq!(f.volume_ml, None);
        assert!((f.area_mm2.unwrap() - 19.0 * 0.04 / 2.0).abs() < 1e-12);
        assert_eq!(f.size(), "0.4 mm²");
        assert_eq!(image_findings(&m, None).size(), "19 pixels");
        let json = f.to_json("Brain");
        assert_eq!(json["label"], "Brain");
        assert!(json.get("volume_ml").is_none() && json["area_mm2"].is_number());
    }

    #[test]
    fn threshold_is_inclusive() {
        let p = Array3::from_shape_vec((1, 1, 4), vec![0.2, 0.7, 0.69, 1.0]).unwrap();
        assert_eq!(
            threshold(&p, 0.7).into_raw_vec_and_offset().0,
            vec![false, true, false, true]
        );
        // A strided view (every other column) is thresholded in logical order.
        let wide = Array3::from_shape_fn((2, 3, 4), |(k, r, c)| (k * 12 + r * 4 + c) as f32);
        let view = wide.slice(ndarray::s![.., .., ..;2]);
        let mask = threshold(&view, 10.0);
        assert_eq!(mask.shape(), &[2, 3, 2]);
        assert!(
            mask.indexed_iter()
                .all(|((k, r, c), &m)| m == (k * 12 + r * 4 + 2 * c >= 10))
        );
    }

    #[test]
    fn findings_use_the_voxel_volume() {
        let grid = Grid {
            origin: [0.0; 3],
            row_dir: [1.0, 0.0, 0.0],
            col_dir: [0.0, 1.0, 0.0],
            normal: [0.0, 0.0, 1.0],
            spacing: [2.0, 0.5, 0.5],
            shape: [4, 10, 10],
            frame_of_reference_uid: "1.2.3".into(),
        };
        let mut mask = Array3::from_elem((4, 10, 10), false);
        mask.slice_mut(ndarray::s![1..3, 0..10, 0..4]).fill(true);
        let f = findings(&mask, &grid);
        assert_eq!(f.voxels, 80);
        assert!((f.volume_ml.unwrap() - 80.0 * 0.5 / 1000.0).abs() < 1e-12);
        assert!((f.fraction_percent - 20.0).abs() < 1e-12);
        assert_eq!(bounding_box(&mask, 1), Some(([0, 0, 0], [4, 10, 5])));
    }

    #[test]
    fn steps_deserialise_from_config() {
        #[derive(Deserialize)]
        struct C {
            steps: Vec<PostStep>,
        }
        let c: C = toml::from_str(
            r#"steps = [{ erode = { radius = 1 } }, "fill_holes", "keep_largest", { min_component_voxels = 50 }, { dilate = { radius = 2 } }]"#,
        )
        .unwrap();
        assert_eq!(
            c.steps,
            vec![
                PostStep::Erode {
                    radius: 1,
                    shape: Structure::Cross
                },
                PostStep::FillHoles,
                PostStep::KeepLargest,
                PostStep::MinComponentVoxels(50),
                PostStep::Dilate {
                    radius: 2,
                    shape: Structure::Cross
                }
            ]
        );
    }
}
