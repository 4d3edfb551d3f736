//! How model output becomes one mask per segment, as the pipeline's `model.activation`
//! says:
//!
//! - `sigmoid`: one logit channel per segment, each its own probability; a voxel is in a
//!   segment when that probability reaches `postprocess.threshold`. Segments may overlap
//!   (structures inside an organ).
//! - `softmax`: exclusive classes, background first; every voxel belongs to the class with
//!   the highest probability (argmax), so segments never overlap and the threshold is not
//!   used.
//! - `none`: the model already outputs probabilities, thresholded like `sigmoid`.
//!
//! Probabilities are computed on the model grid and resampled to the source grid before
//! the decision, so the decision is taken on every source voxel.

use std::fmt;

use ndarray::{Array3, Array4, Axis, Zip};
use serde::{Deserialize, Serialize};

/// The pipeline's `model.activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Independent classes: one logit channel per segment; segments may overlap.
    #[default]
    Sigmoid,
    /// Exclusive classes, background first: argmax, segments never overlap.
    Softmax,
    /// The model outputs probabilities already.
    None,
}

impl Activation {
    /// Whether every voxel belongs to exactly one class (background included).
    pub fn exclusive(self) -> bool {
        self == Activation::Softmax
    }

    /// Model output channels for `segments` segments (softmax adds the background).
    pub fn output_channels(self, segments: usize) -> usize {
        if self.exclusive() {
            segments + 1
        } else {
            segments
        }
    }

    /// The name used in pipeline definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
            Activation::None => "none",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Logits → probabilities. With `softmax` the background channel is kept (channel 0), so
/// the argmax in [`decide`] can choose it.
pub fn probabilities(logits: Array4<f32>, activation: Activation) -> Array4<f32> {
    match activation {
        Activation::Sigmoid => logits.mapv_into(|x| 1.0 / (1.0 + (-x).exp())),
        Activation::Softmax => {
            let max = logits.fold_axis(Axis(0), f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut e = logits;
            for mut channel in e.axis_iter_mut(Axis(0)) {
                channel.zip_mut_with(&max, |x, &m| *x = (*x - m).exp());
            }
            let sum = e.sum_axis(Axis(0));
            for mut channel in e.axis_iter_mut(Axis(0)) {
                channel.zip_mut_with(&sum, |x, &s| *x /= s);
            }
            e
        }
        Activation::None => logits,
    }
}

/// Probabilities (`[K, D, H, W]`, background first with `softmax`) → one mask per segment.
pub fn decide(
    probabilities: &Array4<f32>,
    activation: Activation,
    threshold: f32,
) -> Vec<Array3<bool>> {
    if !activation.exclusive() {
        return probabilities
            .axis_iter(Axis(0))
            .map(|p| crate::pipeline::post::threshold(&p, threshold))
            .collect();
    }
    let classes = probabilities.shape()[0];
    let mut best_p = probabilities.index_axis(Axis(0), 0).to_owned();
    let mut best = Array3::<u16>::zeros(best_p.raw_dim());
    for (k, p) in probabilities.axis_iter(Axis(0)).enumerate().skip(1) {
        Zip::from(&mut best)
            .and(&mut best_p)
            .and(&p)
            .for_each(|b, bp, &v| {
                // Strictly greater: ties go to the lower class (background first), as
                // numpy's and torch's argmax do.
                if v > *bp {
                    *bp = v;
                    *b = k as u16;
                }
            });
    }
    (1..classes)
        .map(|k| best.mapv(|b| usize::from(b) == k))
        .collect()
}

/// Model output to finished masks: probabilities on the model grid, brought onto the
/// source grid by `to_source`, decided, each mask cleaned up by `clean` (post-processing),
/// and for exclusive classes exclusivity restored afterwards.
pub fn masks_from_logits(
    logits: Array4<f32>,
    activation: Activation,
    threshold: f32,
    to_source: impl FnOnce(&Array4<f32>) -> Array4<f32>,
    mut clean: impl FnMut(&mut Array3<bool>),
) -> Vec<Array3<bool>> {
    let on_source = to_source(&probabilities(logits, activation));
    let mut masks = decide(&on_source, activation, threshold);
    drop(on_source);
    let exclusive = activation.exclusive();
    let decided = if exclusive { masks.clone() } else { Vec::new() };
    for mask in masks.iter_mut() {
        clean(mask);
    }
    if exclusive {
        restore_exclusivity(&mut masks, &decided);
    }
    masks
}

/// After post-processing, give back exclusivity that clean-up steps may have broken
/// (filling the holes of one class fills the other classes it surrounds): a voxel the
/// argmax gave to a segment stays only in that segment, and a background voxel claimed by
/// several segments goes to the first of them. `decided` are the masks as [`decide`] gave
/// them, before post-processing. Only for exclusive (`softmax`) classes.
pub fn restore_exclusivity(masks: &mut [Array3<bool>], decided: &[Array3<bool>]) {
    let n = masks.len();
    for k in 0..n {
        let (before, rest) = masks.split_at_mut(k);
        let mask = &mut rest[0];
        for (j, other) in decided.iter().enumerate() {
            if j != k {
                // A voxel the argmax gave to another segment is not this one's.
                Zip::from(&mut *mask).and(other).for_each(|m, &o| *m &= !o);
            }
        }
        for earlier in before.iter() {
            // A background voxel claimed by an earlier segment stays there.
            Zip::from(&mut *mask)
                .and(earlier)
                .for_each(|m, &e| *m &= !e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_keeps_background_and_sums_to_one() {
        let logits =
            Array4::from_shape_vec((3, 1, 1, 2), vec![0.0, 5.0, 1.0, 0.0, 2.0, 0.0]).unwrap();
        let p = probabilities(logits, Activation::Softmax);
        assert_eq!(p.shape(), &[3, 1, 1, 2]);
        let e = [1f32, 1f32.exp(), 2f32.exp()];
        let total: f32 = e.iter().sum();
        assert!((p[[1, 0, 0, 0]] - e[1] / total).abs() < 1e-6);
        assert!((p[[2, 0, 0, 0]] - e[2] / total).abs() < 1e-6);
        assert!((p.index_axis(Axis(3), 1).sum() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn sigmoid_threshold_point() {
        let logits = Array4::from_elem((1, 1, 1, 1), (0.7f32 / 0.3).ln());
        assert!((probabilities(logits, Activation::Sigmoid)[[0, 0, 0, 0]] - 0.7).abs() < 1e-6);
    }

    #[test]
    fn softmax_decides_by_argmax_and_never_overlaps() {
        // Voxel 0: class 2 wins although below 0.5; voxel 1: background wins; voxel 2: a
        // tie between background and class 1 goes to background.
        let p = Array4::from_shape_vec(
            (3, 1, 1, 3),
            vec![0.3, 0.6, 0.4, 0.3, 0.3, 0.4, 0.4, 0.1, 0.2],
        )
        .unwrap();
        let masks = decide(&p, Activation::Softmax, 0.99);
        assert_eq!(masks.len(), 2);
        let flat = |m: &Array3<bool>| m.iter().copied().collect::<Vec<_>>();
        assert_eq!(flat(&masks[0]), [false, false, false]);
        assert_eq!(flat(&masks[1]), [true, false, false]);
    }

    #[test]
    fn exclusivity_is_restored_after_clean_up() {
        let row = |v: &[u8]| {
            Array3::from_shape_vec((1, 1, v.len()), v.iter().map(|&b| b == 1).collect()).unwrap()
        };
        // The argmax: segment 1 = voxels 0-1, segment 2 = voxel 2; voxel 3 background.
        let decided = vec![row(&[1, 1, 0, 0]), row(&[0, 0, 1, 0])];
        // Hole filling gave segment 1 voxel 2 (segment 2's) and voxel 3; segment 2 also
        // grew into voxel 3.
        let mut masks = vec![row(&[1, 1, 1, 1]), row(&[0, 0, 1, 1])];
        restore_exclusivity(&mut masks, &decided);
        assert_eq!(masks[0], row(&[1, 1, 0, 1]));
        assert_eq!(masks[1], row(&[0, 0, 1, 0]));
    }

    #[test]
    fn sigmoid_segments_are_independent() {
        let p = Array4::from_shape_vec((2, 1, 1, 2), vec![0.9, 0.2, 0.8, 0.5]).unwrap();
        let masks = decide(&p, Activation::Sigmoid, 0.5);
        assert_eq!(masks[0].iter().copied().collect::<Vec<_>>(), [true, false]);
        assert_eq!(masks[1].iter().copied().collect::<Vec<_>>(), [true, true]);
    }
}
