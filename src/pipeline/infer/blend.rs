//! Importance maps for blending overlapping windows, built with the same tensor operations
//! as MONAI 1.6.1's `compute_importance_map`, on the inference device.
//!
//! Gaussian: per dimension `exp(t² / (-2 σ²))` with `t = i - (roi - 1) / 2` and
//! `σ = sigma_scale · roi`, multiplied across dimensions. MONAI does **not** normalise the
//! map to a maximum of 1 (for an even roi the centre voxel is slightly below 1); it only
//! clamps it from below at `max(min(map), 1e-3)`, i.e. the far corners get weight 1e-3
//! rather than ~1e-10. The weights cancel in the final division, so only their ratios
//! matter, but we keep MONAI's values to stay bit-close.

use tch::{Device, Kind, Tensor};

use super::Blending;

/// The smallest weight MONAI lets a voxel have (`compute_importance_map`).
pub const MIN_WEIGHT: f64 = 1e-3;

/// The importance map for one window, shape `[1, 1, D, H, W]`, float32, on `device`.
pub fn importance_map(
    roi: [usize; 3],
    blending: Blending,
    sigma_scale: f64,
    device: Device,
) -> Result<Tensor, tch::TchError> {
    let shape = roi.map(|r| r as i64);
    let map = match blending {
        Blending::Constant => Tensor::f_ones(shape, (Kind::Float, device))?,
        Blending::Gaussian => {
            let g: Vec<Tensor> = roi
                .iter()
                .map(|&r| gaussian_1d(r, sigma_scale, device))
                .collect::<Result<_, _>>()?;
            // MONAI: map = g0; map = map.unsqueeze(-1) * g1[None]; map = map.unsqueeze(-1) * g2[None, None].
            let dh = g[0].f_unsqueeze(-1)?.f_mul(&g[1].f_unsqueeze(0)?)?;
            dh.f_unsqueeze(-1)?.f_mul(&g[2].f_view([1, 1, shape[2]])?)?
        }
    };
    let floor = map.f_min()?.f_double_value(&[])?.max(MIN_WEIGHT);
    map.f_clamp_min(floor)?
        .f_view([1, 1, shape[0], shape[1], shape[2]])
}

/// One dimension of the Gaussian: `exp(t² / (-2 σ²))` for `t = -(n-1)/2 … (n-1)/2`.
fn gaussian_1d(n: usize, sigma_scale: f64, device: Device) -> Result<Tensor, tch::TchError> {
    let sigma = n as f64 * sigma_scale;
    let half = (n as f64 - 1.0) / 2.0;
    // Half-integers are exact in f32, as MONAI's `torch.arange(-(n-1)/2, (n-1)/2 + 1)`.
    let t: Vec<f32> = (0..n).map(|i| (i as f64 - half) as f32).collect();
    Tensor::f_from_slice(&t)?
        .f_to_device(device)?
        .f_pow_tensor_scalar(2)?
        .f_div_scalar(-2.0 * sigma * sigma)?
        .f_exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(map: &Tensor, z: i64, y: i64, x: i64) -> f64 {
        map.double_value(&[0, 0, z, y, x])
    }

    #[test]
    fn constant_is_all_ones() {
        let map = importance_map([4, 5, 6], Blending::Constant, 0.125, Device::Cpu).unwrap();
        assert_eq!(map.size(), vec![1, 1, 4, 5, 6]);
        assert_eq!(map.min().double_value(&[]), 1.0);
        assert_eq!(map.max().double_value(&[]), 1.0);
    }

    #[test]
    fn gaussian_even_roi_matches_monai_values() {
        // roi 64, σ = 8: the four central voxels per dim sit at t = ±0.5, so the centre
        // weight is exp(-3 · 0.25 / 128) = 0.994157…, not 1 (MONAI does not normalise).
        let map = importance_map([64, 64, 64], Blending::Gaussian, 0.125, Device::Cpu).unwrap();
        assert_eq!(map.size(), vec![1, 1, 64, 64, 64]);
        let centre = (-0.75f64 / 128.0).exp();
        assert!((at(&map, 31, 31, 31) - centre).abs() < 1e-6);
        assert!((at(&map, 32, 32, 32) - centre).abs() < 1e-6);
        // Half-way to the edge along one axis: t = 15.5 there, 0.5 on the others.
        let mid = (-(15.5f64 * 15.5 + 0.25 + 0.25) / 128.0).exp();
        assert!((at(&map, 31, 31, 47) - mid).abs() < 1e-6);
        // Edges: exp(-(31.5² + 0.5)/128) ≈ 4.3e-4 < 1e-3 → clamped to MONAI's floor.
        assert!((at(&map, 31, 31, 0) - MIN_WEIGHT).abs() < 1e-9);
        assert!((at(&map, 0, 0, 0) - MIN_WEIGHT).abs() < 1e-9);
        assert!((map.min().double_value(&[]) - MIN_WEIGHT).abs() < 1e-9);
    }

    #[test]
    fn gaussian_odd_roi_peaks_at_one_and_keeps_its_minimum() {
        // roi 5 with sigma_scale 0.5: σ = 2.5; the minimum exp(-3·4/12.5) ≈ 0.383
        // is above 1e-3, so the clamp is a no-op; the centre is exactly 1.
        let map = importance_map([5, 5, 5], Blending::Gaussian, 0.5, Device::Cpu).unwrap();
        assert_eq!(at(&map, 2, 2, 2), 1.0);
        let corner = (-3.0f64 * 4.0 / (2.0 * 2.5 * 2.5)).exp();
        assert!((at(&map, 0, 0, 0) - corner).abs() < 1e-6);
        assert!((at(&map, 4, 0, 4) - corner).abs() < 1e-6);
        let edge = (-4.0f64 / 12.5).exp();
        assert!((at(&map, 2, 2, 0) - edge).abs() < 1e-6);
    }

    #[test]
    fn gaussian_is_anisotropic_per_dimension() {
        let map = importance_map([8, 16, 32], Blending::Gaussian, 0.125, Device::Cpu).unwrap();
        assert_eq!(map.size(), vec![1, 1, 8, 16, 32]);
        // The 1-D profiles along each axis through the centre are each axis' own Gaussian.
        let profile = |n: f64, t: f64| (-(t * t) / (2.0 * (n * 0.125).powi(2))).exp();
        let expected = profile(8.0, 0.5) * profile(16.0, 0.5) * profile(32.0, 4.5);
        assert!((at(&map, 4, 8, 20) - expected).abs() < 1e-6);
    }
}
