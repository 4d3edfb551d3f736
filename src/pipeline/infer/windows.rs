//! Where the sliding windows go: padding of dimensions smaller than the roi, the scan
//! interval and the window start positions, exactly as MONAI 1.6.1 computes them
//! (`sliding_window_inference`, `_get_scan_interval`, `dense_patch_slices`), so that
//! segnode's blended output matches MONAI's voxel for voxel.
//!
//! Pure arithmetic, no tensors: the unit tests below pin the positions MONAI produces.

/// The window layout for one volume: how it is padded and where every window starts.
///
/// All coordinates are in the padded volume (`pad_before` voxels of padding precede the
/// image in each dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    /// Spatial size of the input volume `[D, H, W]`.
    pub image: [usize; 3],
    /// Window (roi) size `[D, H, W]`.
    pub roi: [usize; 3],
    /// Zero padding before the image per dimension (MONAI: `diff // 2`).
    pub pad_before: [usize; 3],
    /// Zero padding after the image per dimension (MONAI: `diff - diff // 2`).
    pub pad_after: [usize; 3],
    /// Spatial size after padding: `max(image, roi)` per dimension.
    pub padded: [usize; 3],
    /// Step between window starts per dimension.
    pub interval: [usize; 3],
    /// Window start positions per dimension, ascending; the last window ends at the border.
    pub starts: [Vec<usize>; 3],
}

impl WindowPlan {
    /// Lay out windows of size `roi` over an `image` with fractional `overlap` in `[0, 1)`.
    ///
    /// `roi` entries must be ≥ 1 (checked when the settings are validated).
    pub fn new(image: [usize; 3], roi: [usize; 3], overlap: f64) -> WindowPlan {
        let mut pad_before = [0; 3];
        let mut pad_after = [0; 3];
        let mut padded = [0; 3];
        let mut interval = [0; 3];
        let mut starts: [Vec<usize>; 3] = Default::default();
        for d in 0..3 {
            let diff = roi[d].saturating_sub(image[d]);
            pad_before[d] = diff / 2;
            pad_after[d] = diff - diff / 2;
            padded[d] = image[d].max(roi[d]);
            interval[d] = scan_interval(padded[d], roi[d], overlap);
            starts[d] = window_starts(padded[d], roi[d], interval[d]);
        }
        WindowPlan {
            image,
            roi,
            pad_before,
            pad_after,
            padded,
            interval,
            starts,
        }
    }

    /// Number of windows in the volume.
    pub fn len(&self) -> usize {
        self.starts.iter().map(Vec::len).product()
    }

    /// Whether there are no windows (never, for a valid roi; present for clippy's sake).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Window start corners `[z, y, x]` in MONAI's order (`np.meshgrid(..., indexing="ij")`
    /// flattened: the first dimension varies slowest), which is also the batching order.
    pub fn windows(&self) -> impl Iterator<Item = [usize; 3]> + '_ {
        let [sd, sh, sw] = &self.starts;
        sd.iter().flat_map(move |&z| {
            sh.iter()
                .flat_map(move |&y| sw.iter().map(move |&x| [z, y, x]))
        })
    }
}

/// MONAI `_get_scan_interval` for one dimension of the (already padded) image: the roi
/// itself when the image is exactly one roi, else `int(roi * (1 - overlap))`, at least 1.
pub fn scan_interval(padded: usize, roi: usize, overlap: f64) -> usize {
    if roi == padded {
        return roi;
    }
    // Python `int()` truncates toward zero; the product is non-negative here.
    let interval = (roi as f64 * (1.0 - overlap)) as usize;
    interval.max(1)
}

/// MONAI `dense_patch_slices` for one dimension: starts at `0, step, 2*step, …` up to the
/// first window reaching the border, with a start that would overrun moved back to
/// `padded - roi`.
pub fn window_starts(padded: usize, roi: usize, interval: usize) -> Vec<usize> {
    let patch = roi.min(padded);
    let count = if interval == 0 {
        1
    } else {
        let num = padded.div_ceil(interval);
        (0..num)
            .find(|d| d * interval + patch >= padded)
            .map_or(1, |d| d + 1)
    };
    (0..count)
        .map(|i| {
            let start = i * interval;
            start - (start + patch).saturating_sub(padded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were produced by MONAI 1.6.1 itself:
    //   from monai.inferers.utils import _get_scan_interval
    //   from monai.data.utils import dense_patch_slices
    //   si = _get_scan_interval(size, roi, 3, (ov,) * 3)
    //   sorted({s[d].start for s in dense_patch_slices(size, roi, si)})

    #[test]
    fn image_100_roi_64_overlap_half() {
        // interval int(64 * 0.5) = 32; 0, 32, then 64 would overrun (64 + 64 > 100) → 36.
        assert_eq!(scan_interval(100, 64, 0.5), 32);
        assert_eq!(window_starts(100, 64, 32), vec![0, 32, 36]);
    }

    #[test]
    fn image_equal_to_roi_is_one_window_with_roi_step() {
        assert_eq!(scan_interval(96, 96, 0.5), 96);
        assert_eq!(window_starts(96, 96, 96), vec![0]);
    }

    #[test]
    fn interval_truncates_like_python_int() {
        // 96 * (1 - 0.7) = 28.800000000000004 → 28; 5 * (1 - 0.9) = 0.4999… → 0 → 1.
        assert_eq!(scan_interval(200, 96, 0.7), 28);
        assert_eq!(window_starts(200, 96, 28), vec![0, 28, 56, 84, 104]);
        assert_eq!(scan_interval(10, 5, 0.9), 1);
        // 96 * 0.75 = 72 exactly; 64 * (1 - 0.25) = 48.
        assert_eq!(scan_interval(300, 96, 0.25), 72);
        assert_eq!(window_starts(300, 96, 72), vec![0, 72, 144, 204]);
        assert_eq!(window_starts(10, 5, 1), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn zero_overlap_tiles_with_last_window_aligned() {
        assert_eq!(scan_interval(150, 64, 0.0), 64);
        assert_eq!(window_starts(150, 64, 64), vec![0, 64, 86]);
        assert_eq!(window_starts(128, 64, 64), vec![0, 64]);
    }

    #[test]
    fn parity_test_shape_plan() {
        // The shape used by tests/infer_monai_parity.rs: [70, 41, 90] with roi 64³, overlap 0.5.
        // H = 41 < 64: padded by 23 → 11 before, 12 after; one window.
        let plan = WindowPlan::new([70, 41, 90], [64, 64, 64], 0.5);
        assert_eq!(plan.padded, [70, 64, 90]);
        assert_eq!(plan.pad_before, [0, 11, 0]);
        assert_eq!(plan.pad_after, [0, 12, 0]);
        assert_eq!(plan.interval, [32, 64, 32]);
        assert_eq!(plan.starts, [vec![0, 6], vec![0], vec![0, 26]]);
        assert_eq!(plan.len(), 4);
        let order: Vec<_> = plan.windows().collect();
        assert_eq!(order, vec![[0, 0, 0], [0, 0, 26], [6, 0, 0], [6, 0, 26]]);
    }

    #[test]
    fn odd_padding_puts_the_extra_voxel_after() {
        // diff = 64 - 33 = 31 → 15 before, 16 after (MONAI: half = diff // 2; diff - half).
        let plan = WindowPlan::new([33, 64, 100], [64, 64, 64], 0.25);
        assert_eq!(plan.pad_before, [15, 0, 0]);
        assert_eq!(plan.pad_after, [16, 0, 0]);
        assert_eq!(plan.starts, [vec![0], vec![0], vec![0, 36]]);
    }
}
