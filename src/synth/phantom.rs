//! The breast phantom: anatomy, the enhancing lesion and its contrast kinetics, and the
//! rendering of one slice for any set of DCE phases.
//!
//! Anatomy is defined in a frame centred on the DCE volume and scaled (the same on every
//! axis) to its longest side, so a 64 x 64 x 16 test study and a 256 x 256 x 128 benchmark
//! study both show breasts in front of a chest wall; LPS axes, breasts anterior (−y) of the
//! chest wall. A slab that is thin from left to right is centred on one breast, and a field
//! of view under 10 cm is zoomed onto one breast. Fat-suppressed T1 intensities on a 12-bit scale: fat dark, fibroglandular tissue
//! brighter, air Rician noise only. The lesion is an ellipsoid in millimetres, placed by
//! the seed inside one breast and well inside the field of view, and decided per voxel
//! centre by exactly the test [`super::LesionTruth::contains`] uses.

use super::SynthError;
use super::geometry::{Grid, Vec3, add, dot, matmul, rot_x, rot_y, rot_z, scale};
use super::rng::{SplitMix64, stream, value_noise};
use super::truth::ellipsoid_contains;

/// Number of DCE phases the phantom knows (pre-contrast and three post-contrast).
pub(crate) const PHASES: usize = 4;

/// Relative progress of background enhancement per phase (slow, persistent uptake).
const BACKGROUND_CURVE: [f64; PHASES] = [0.0, 0.75, 0.9, 1.0];

/// Chest wall plane (normalised y); breasts lie at y below it (anterior).
const CHEST_WALL_Y: f64 = 0.25;
/// Breast half-ellipsoid centre x (±) and radii in the normalised frame.
const BREAST_X: f64 = 0.47;
const BREAST_R: Vec3 = [0.44, 0.95, 0.8];
/// Below this half field of view (mm) the phantom shows a zoomed view of one breast.
const ZOOM_BELOW_MM: f64 = 50.0;
/// Breast skin thickness as a fraction of the ellipsoid radius.
const SKIN_FROM: f64 = 0.965;

/// Rician noise level (standard deviation of each quadrature channel).
const NOISE_SIGMA: f64 = 12.0;
/// Largest value BitsStored = 12 allows.
const MAX_PIXEL: f64 = 4095.0;

/// Stream labels, so that each use of the seed draws independent numbers.
const TAG_TEXTURE_COARSE: u64 = 1;
const TAG_TEXTURE_FINE: u64 = 2;
const TAG_THORAX: u64 = 3;
const TAG_LESION_TEXTURE: u64 = 4;
const TAG_NOISE: u64 = 5;
const TAG_LESION: u64 = 6;
const TAG_BIAS: u64 = 7;

/// The enhancing lesion: an ellipsoid with type-III (washout) kinetics.
#[derive(Debug, Clone)]
pub(crate) struct Lesion {
    /// Centre in patient coordinates (mm).
    pub centre: Vec3,
    /// Semi-axis lengths (mm).
    pub radii: Vec3,
    /// Unit semi-axis directions.
    pub axes: [Vec3; 3],
    /// Pre-contrast signal: between fat and fibroglandular tissue, like its surroundings.
    pub s0: f64,
    /// Signal multiplier per phase: 1, then > 2 (enhancement > 100 %), plateau, washout.
    pub curve: [f64; PHASES],
}

impl Lesion {
    fn contains(&self, p: Vec3) -> bool {
        ellipsoid_contains(self.centre, self.radii, &self.axes, p)
    }
}

/// A seeded phantom bound to the frame of one DCE volume.
#[derive(Debug, Clone)]
pub(crate) struct Phantom {
    seed: u64,
    /// Centre and half extent of the normalised anatomy frame.
    frame_centre: Vec3,
    frame_half: Vec3,
    /// Direction and strength of the smooth multiplicative bias field.
    bias_dir: Vec3,
    bias_amp: f64,
    /// The breast the volume is centred on (+1 patient left, −1 right), if only one.
    side: Option<f64>,
    /// Seeds of the texture fields (coarse and fine gland, thorax, lesion).
    texture_seeds: [u64; 4],
    /// The lesion, if this phantom has one.
    pub lesion: Option<Lesion>,
}

/// Phase-independent content of one voxel.
struct Voxel {
    /// Pre-contrast signal before bias.
    base: f64,
    /// Background enhancement reached at the last phase (fraction).
    enhancement: f64,
    /// Whether the voxel centre is inside the lesion.
    lesion: bool,
}

impl Phantom {
    /// A phantom framed on `grid`, with a lesion placed inside it when `with_lesion`.
    pub(crate) fn new(grid: &Grid, seed: u64, with_lesion: bool) -> Result<Self, SynthError> {
        let (mut frame_centre, bounds_half) = grid.patient_bounds();
        let longest = grid.half_extents().into_iter().fold(0.0, f64::max);
        let mut rng = SplitMix64::new(stream(seed, &[TAG_BIAS]));
        // Undistorted anatomy: one scale on every axis, set by the volume's longest side.
        // A field of view too small for both breasts is zoomed onto one; a slab thin from
        // left to right (a sagittal acquisition) is centred on one breast, as a unilateral
        // sagittal protocol would be.
        let (s, unilateral) = if longest < ZOOM_BELOW_MM {
            (longest * 0.95 / BREAST_R[0], true)
        } else {
            (longest, bounds_half[0] < 0.6 * longest)
        };
        let side = unilateral.then(|| {
            if rng.next_u64().is_multiple_of(2) {
                1.0
            } else {
                -1.0
            }
        });
        if let Some(side) = side {
            frame_centre[0] -= side * BREAST_X * s;
        }
        let frame_half = [s; 3];
        let angle = rng.range(0.0, std::f64::consts::TAU);
        let tilt = rng.range(-0.5, 0.5);
        let bias_dir = [angle.cos(), angle.sin(), tilt];
        let bias_amp = rng.range(0.05, 0.09);
        let texture_seeds = [
            TAG_TEXTURE_COARSE,
            TAG_TEXTURE_FINE,
            TAG_THORAX,
            TAG_LESION_TEXTURE,
        ]
        .map(|t| stream(seed, &[t]));
        let mut phantom = Self {
            seed,
            frame_centre,
            frame_half,
            bias_dir,
            bias_amp,
            side,
            texture_seeds,
            lesion: None,
        };
        if with_lesion {
            phantom.lesion = Some(phantom.place_lesion(grid)?);
        }
        Ok(phantom)
    }

    /// Render slice `k` of `grid` for each of `phases`, as little-endian 16-bit pixel data.
    /// `noise_key` separates the noise of different series. Returns the buffers and the
    /// number of lesion voxels on the slice.
    pub(crate) fn render_slice(
        &self,
        grid: &Grid,
        k: usize,
        phases: &[usize],
        noise_key: u64,
    ) -> (Vec<Vec<u8>>, u64) {
        let n = grid.rows * grid.cols;
        let mut out: Vec<Vec<u8>> = phases.iter().map(|_| Vec::with_capacity(2 * n)).collect();
        let mut rngs: Vec<SplitMix64> = phases
            .iter()
            .map(|&ph| {
                SplitMix64::new(stream(
                    self.seed,
                    &[TAG_NOISE, noise_key, ph as u64, k as u64],
                ))
            })
            .collect();
        let mut lesion_voxels = 0;
        for r in 0..grid.rows {
            for c in 0..grid.cols {
                let p = grid.voxel_centre(k, r, c);
                let v = self.voxel(p);
                lesion_voxels += u64::from(v.lesion);
                let bias = self.bias(p);
                for ((buf, rng), &ph) in out.iter_mut().zip(rngs.iter_mut()).zip(phases) {
                    let signal = self.signal(&v, p, ph) * bias;
                    let (g1, g2) = rng.gaussian_pair();
                    let re = signal + NOISE_SIGMA * g1;
                    let im = NOISE_SIGMA * g2;
                    let value = (re * re + im * im).sqrt().round().min(MAX_PIXEL) as u16;
                    buf.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        (out, lesion_voxels)
    }

    /// ImageLaterality of the volume: "B", or "L"/"R" when it shows one breast.
    pub(crate) fn laterality(&self) -> &'static str {
        match self.side {
            None => "B",
            Some(side) if side > 0.0 => "L", // LPS: +x is the patient's left
            Some(_) => "R",
        }
    }

    /// Noise-free signal of a voxel at phase `ph`, before bias.
    fn signal(&self, v: &Voxel, p: Vec3, ph: usize) -> f64 {
        match (&self.lesion, v.lesion) {
            (Some(lesion), true) => {
                // Mild internal heterogeneity that scales every phase alike.
                let texture = 0.92 + 0.16 * value_noise(self.texture_seeds[3], scale(p, 1.0 / 3.0));
                lesion.s0 * texture * lesion.curve[ph]
            }
            _ => v.base * (1.0 + v.enhancement * BACKGROUND_CURVE[ph]),
        }
    }

    /// What the point `p` is made of.
    fn voxel(&self, p: Vec3) -> Voxel {
        let lesion = self.lesion.as_ref().is_some_and(|l| l.contains(p));
        let q = self.normalise(p);
        let (base, enhancement) = if let Some(m) = breast_metric(q) {
            if m.sqrt() > SKIN_FROM {
                (480.0, 0.10)
            } else {
                let n = 0.65 * value_noise(self.texture_seeds[0], scale(p, 1.0 / 14.0))
                    + 0.35 * value_noise(self.texture_seeds[1], scale(p, 1.0 / 5.0));
                // Denser fibroglandular tissue towards the centre of the breast.
                let t = 0.58 - 0.18 * (1.0 - m);
                let f = smoothstep(t - 0.06, t + 0.06, n);
                (210.0 * (1.0 - f) + 640.0 * f, 0.05 * (1.0 - f) + 0.16 * f)
            }
        } else if q[1] > CHEST_WALL_Y
            && (q[0] / 0.98).powi(2) + ((q[1] - CHEST_WALL_Y) / 0.72).powi(2) <= 1.0
            && q[2].abs() <= 1.5
        {
            if q[1] < CHEST_WALL_Y + 0.08 {
                (360.0, 0.12) // pectoral muscle
            } else {
                (
                    90.0 + 180.0 * value_noise(self.texture_seeds[2], scale(p, 1.0 / 20.0)),
                    0.10,
                )
            }
        } else {
            (0.0, 0.0)
        };
        Voxel {
            base,
            enhancement,
            lesion,
        }
    }

    /// Smooth multiplicative coil-sensitivity field, the same in every phase.
    fn bias(&self, p: Vec3) -> f64 {
        let q = self.normalise(p);
        1.0 + self.bias_amp * dot(q, self.bias_dir) - 0.03 * (q[0] * q[0] + q[1] * q[1])
    }

    fn normalise(&self, p: Vec3) -> Vec3 {
        [0, 1, 2].map(|a| (p[a] - self.frame_centre[a]) / self.frame_half[a])
    }

    /// Draw the lesion: a centre deep in breast tissue and inside the volume, radii
    /// 8–15 mm (shrunk until the whole ellipsoid fits the tissue and the field of view),
    /// random axes, and type-III kinetics.
    fn place_lesion(&self, grid: &Grid) -> Result<Lesion, SynthError> {
        let mut rng = SplitMix64::new(stream(self.seed, &[TAG_LESION]));
        let extent = [grid.cols, grid.rows, grid.slices].map(|n| (n - 1) as f64);
        for _ in 0..2000 {
            let frac = [
                rng.range(0.2, 0.8),
                rng.range(0.2, 0.8),
                rng.range(0.25, 0.75),
            ];
            let centre = add(
                grid.positions[0],
                add(
                    scale(grid.row_dir, frac[0] * extent[0] * grid.pixel_spacing[1]),
                    add(
                        scale(grid.col_dir, frac[1] * extent[1] * grid.pixel_spacing[0]),
                        scale(grid.normal, frac[2] * extent[2] * grid.slice_spacing),
                    ),
                ),
            );
            let q = self.normalise(centre);
            if !breast_metric(q).is_some_and(|m| m <= 0.25)
                || q[1] > CHEST_WALL_Y - 0.2 * BREAST_R[1]
            {
                continue;
            }
            let mut radii = [
                rng.range(8.0, 15.0),
                rng.range(8.0, 15.0),
                rng.range(8.0, 15.0),
            ];
            let rot = matmul(
                rot_z(rng.range(0.0, std::f64::consts::TAU)),
                matmul(
                    rot_y(rng.range(-1.2, 1.2)),
                    rot_x(rng.range(0.0, std::f64::consts::PI)),
                ),
            );
            // Columns of the rotation are the semi-axis directions.
            let axes = [0, 1, 2].map(|j| [rot[0][j], rot[1][j], rot[2][j]]);
            // Under two voxels from centre to edge along some grid axis the lesion would be a
            // speck; then try another centre.
            while voxel_half_extents(grid, radii, &axes)
                .iter()
                .all(|&h| h >= 2.0)
            {
                if self.lesion_fits(grid, centre, radii, &axes) {
                    let enhancement = rng.range(1.25, 1.5);
                    let curve = [
                        1.0,
                        1.0 + enhancement,
                        1.0 + enhancement * rng.range(0.9, 0.97),
                        1.0 + enhancement * rng.range(0.62, 0.75),
                    ];
                    return Ok(Lesion {
                        centre,
                        radii,
                        axes,
                        s0: 480.0 * rng.range(0.92, 1.08),
                        curve,
                    });
                }
                radii = radii.map(|r| r * 0.92);
            }
        }
        Err(SynthError::LesionPlacement)
    }

    /// Whether the ellipsoid lies inside the volume with a margin and inside breast tissue
    /// (clear of skin and chest wall).
    fn lesion_fits(&self, grid: &Grid, centre: Vec3, radii: Vec3, axes: &[Vec3; 3]) -> bool {
        let index = grid.index_of(centre);
        let half = voxel_half_extents(grid, radii, axes);
        for (a, n) in [grid.cols, grid.rows, grid.slices].into_iter().enumerate() {
            let margin = 1.5 + 0.05 * n as f64;
            if index[a] - half[a] < margin || index[a] + half[a] > (n - 1) as f64 - margin {
                return false;
            }
        }
        // Sample the surface (Fibonacci sphere) against the tissue boundaries.
        const SAMPLES: usize = 400;
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        (0..SAMPLES).all(|i| {
            let z = 1.0 - 2.0 * (i as f64 + 0.5) / SAMPLES as f64;
            let r = (1.0 - z * z).sqrt();
            let u = [
                r * (golden * i as f64).cos(),
                r * (golden * i as f64).sin(),
                z,
            ];
            let offset = (0..3).fold([0.0; 3], |acc, j| add(acc, scale(axes[j], radii[j] * u[j])));
            let q = self.normalise(add(centre, offset));
            breast_metric(q).is_some_and(|m| m.sqrt() <= 0.9) && q[1] <= CHEST_WALL_Y - 0.03
        })
    }
}

/// Half extent of an ellipsoid (at the origin) along the grid's column, row and slice
/// directions, in voxels of each direction.
fn voxel_half_extents(grid: &Grid, radii: Vec3, axes: &[Vec3; 3]) -> Vec3 {
    let dirs = [
        (grid.row_dir, grid.pixel_spacing[1]),
        (grid.col_dir, grid.pixel_spacing[0]),
        (grid.normal, grid.slice_spacing),
    ];
    // Exact: the support function of the ellipsoid along each unit direction.
    dirs.map(|(d, spacing)| {
        (0..3)
            .map(|i| (radii[i] * dot(axes[i], d)).powi(2))
            .sum::<f64>()
            .sqrt()
            / spacing
    })
}

/// Squared ellipsoid radius of a normalised point within the breast on its side, if the
/// point is inside that breast (anterior of the chest wall).
fn breast_metric(q: Vec3) -> Option<f64> {
    if q[1] > CHEST_WALL_Y {
        return None;
    }
    let side = if q[0] >= 0.0 { 1.0 } else { -1.0 };
    let b = [
        (q[0] - side * BREAST_X) / BREAST_R[0],
        (q[1] - CHEST_WALL_Y) / BREAST_R[1],
        q[2] / BREAST_R[2],
    ];
    let m = dot(b, b);
    (m <= 1.0).then_some(m)
}

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}
