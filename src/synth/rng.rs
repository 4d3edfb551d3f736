//! Seeded randomness for the phantom: a SplitMix64 generator, Gaussian samples and a
//! smooth 3D value-noise field.
//!
//! Everything the generator draws comes from here, keyed by the study seed, so the same
//! seed gives the same pixels whatever the thread count (each slice and phase derives its
//! own stream with [`stream`]).

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough for image noise.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started at `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Two independent standard normal samples (Box–Muller).
    pub(crate) fn gaussian_pair(&mut self) -> (f64, f64) {
        // 1 - u keeps the logarithm finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }
}

/// The SplitMix64 finaliser: a bijective 64-bit mix.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for an independent sub-stream, derived from the study seed and labels
/// (for example a purpose tag, the phase and the slice index).
pub(crate) fn stream(seed: u64, labels: &[u64]) -> u64 {
    labels
        .iter()
        .fold(mix64(seed ^ 0x5EC0_DE5E_ED00_0001), |acc, &l| {
            mix64(acc ^ mix64(l.wrapping_add(0x632B_E59B_D9B4_E019)))
        })
}

/// Smooth value noise in [0, 1] at point `p` (in lattice units), keyed by `seed`.
///
/// Random values sit on the integer lattice and are blended with a smoothstep trilinear
/// interpolation, so the field is continuous and varies on the scale of one lattice cell.
pub(crate) fn value_noise(seed: u64, p: [f64; 3]) -> f64 {
    let fl = [p[0].floor(), p[1].floor(), p[2].floor()];
    let i = [fl[0] as i64, fl[1] as i64, fl[2] as i64];
    let t = [
        smooth(p[0] - fl[0]),
        smooth(p[1] - fl[1]),
        smooth(p[2] - fl[2]),
    ];
    let corner = |dx: i64, dy: i64, dz: i64| lattice(seed, i[0] + dx, i[1] + dy, i[2] + dz);
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let x00 = lerp(corner(0, 0, 0), corner(1, 0, 0), t[0]);
    let x10 = lerp(corner(0, 1, 0), corner(1, 1, 0), t[0]);
    let x01 = lerp(corner(0, 0, 1), corner(1, 0, 1), t[0]);
    let x11 = lerp(corner(0, 1, 1), corner(1, 1, 1), t[0]);
    lerp(lerp(x00, x10, t[1]), lerp(x01, x11, t[1]), t[2])
}

fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

fn lattice(seed: u64, x: i64, y: i64, z: i64) -> f64 {
    let h = mix64(
        seed ^ mix64(
            (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                ^ (z as u64).wrapping_mul(0x1656_67B1_9E37_79F9),
        ),
    );
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(stream(7, &[1, 2]));
        let mut b = SplitMix64::new(stream(7, &[1, 2]));
        let mut c = SplitMix64::new(stream(7, &[2, 1]));
        let va: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn gaussian_moments() {
        let mut r = SplitMix64::new(3);
        let n = 100_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n / 2 {
            let (a, b) = r.gaussian_pair();
            s += a + b;
            s2 += a * a + b * b;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn value_noise_is_bounded_and_continuous() {
        for k in 0..1000 {
            let p = [k as f64 * 0.173, k as f64 * -0.091, k as f64 * 0.057];
            let v = value_noise(9, p);
            assert!((0.0..=1.0).contains(&v));
            let w = value_noise(9, [p[0] + 1e-6, p[1], p[2]]);
            assert!((v - w).abs() < 1e-4);
        }
    }
}
