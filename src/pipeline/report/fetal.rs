//! What a fetal head segment measures on one frame: its area, and for the brain the
//! biometry a sonographer takes with calipers — head circumference (HC), biparietal
//! diameter (BPD) and occipito-frontal diameter (OFD) — from an ellipse fitted to the
//! segment's outline, in calibrated mm.
//!
//! The outline is the set of *crack points*: the midpoint between every foreground pixel
//! and each of its 4-neighbours that is background. They lie on the boundary between
//! pixel centres inside and outside the structure, so they scatter evenly around the true
//! contour instead of half a pixel inside it. Holes (the cavum and ventricle of an
//! exclusive-class brain segment) are filled first, so only the outer contour is fitted.
//!
//! The ellipse is the direct least-squares conic fit constrained to ellipses (Fitzgibbon,
//! Pilu and Fisher 1999), in the numerically stable form of Halíř and Flusser (1998), on
//! coordinates centred and scaled to unit RMS radius. Cost: one pass over the points
//! (O(n), a 6x6 scatter matrix) and a 3x3 eigenproblem; n is at most four per pixel.
//! HC is the fitted ellipse's perimeter by Ramanujan's first approximation, OFD its major
//! and BPD its minor axis (outer-to-outer of the fitted contour).

use ndarray::{Array3, ArrayView2, Axis};

use crate::pipeline::post::{self, PostStep};

/// An ellipse in image mm: x along a row (column index × column spacing), y down a
/// column (row index × row spacing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    /// Centre (x, y), mm.
    pub centre: [f64; 2],
    /// Semi-major axis, mm.
    pub semi_major: f64,
    /// Semi-minor axis, mm.
    pub semi_minor: f64,
    /// Angle of the major axis from +x towards +y, radians in (-π/2, π/2].
    pub angle: f64,
}

impl Ellipse {
    /// Perimeter by Ramanujan's first approximation (relative error below 4·10⁻⁴ up to an
    /// axis ratio of 3, far flatter than any head).
    pub fn perimeter(&self) -> f64 {
        ramanujan_perimeter(self.semi_major, self.semi_minor)
    }
}

/// π [3(a + b) − √((3a + b)(a + 3b))] for semi-axes `a`, `b`.
pub fn ramanujan_perimeter(a: f64, b: f64) -> f64 {
    std::f64::consts::PI * (3.0 * (a + b) - ((3.0 * a + b) * (a + 3.0 * b)).sqrt())
}

/// Fetal head biometry from the fitted ellipse, mm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadBiometry {
    /// Head circumference: the ellipse's perimeter.
    pub hc_mm: f64,
    /// Biparietal diameter: the minor axis.
    pub bpd_mm: f64,
    /// Occipito-frontal diameter: the major axis.
    pub ofd_mm: f64,
    /// The fitted ellipse.
    pub ellipse: Ellipse,
}

/// Why a frame has no biometry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BiometryError {
    #[error(
        "the image has no pixel calibration (neither PixelSpacing nor a calibrated ultrasound \
         region), so no size in mm can be given; calibrate the scanner's export"
    )]
    NoCalibration,
    #[error("the segment's outline has {0} points, too few to fit an ellipse")]
    TooFewPoints(usize),
    #[error("the segment's outline is not elliptical (the fit found no ellipse)")]
    NotAnEllipse,
}

/// Area in mm² of one frame's mask, when the pixel size (`[row, column]` spacing) is known.
pub fn area_mm2(mask: ArrayView2<bool>, spacing_mm: Option<[f64; 2]>) -> Option<f64> {
    let pixels = mask.iter().filter(|&&v| v).count() as f64;
    spacing_mm.map(|[r, c]| pixels * r * c)
}

/// HC, BPD and OFD of one frame's brain mask with `[row, column]` pixel spacing in mm.
pub fn head_biometry(
    mask: ArrayView2<bool>,
    spacing_mm: Option<[f64; 2]>,
) -> Result<HeadBiometry, BiometryError> {
    let spacing = spacing_mm.ok_or(BiometryError::NoCalibration)?;
    let mut filled = mask.to_owned().insert_axis(Axis(0));
    post::apply_in_plane(&mut filled, &[PostStep::FillHoles, PostStep::KeepLargest]);
    let points = crack_points(&filled, spacing);
    let ellipse = fit_ellipse(&points)?;
    Ok(HeadBiometry {
        hc_mm: ellipse.perimeter(),
        bpd_mm: 2.0 * ellipse.semi_minor,
        ofd_mm: 2.0 * ellipse.semi_major,
        ellipse,
    })
}

/// Midpoints between each foreground pixel and its background 4-neighbours (pixels
/// beyond the border count as background), as (x, y) mm. `mask` is `[1, rows, columns]`.
fn crack_points(mask: &Array3<bool>, [row_mm, col_mm]: [f64; 2]) -> Vec<[f64; 2]> {
    let frame = mask.index_axis(Axis(0), 0);
    let (rows, cols) = frame.dim();
    let on = |r: isize, c: isize| {
        r >= 0
            && c >= 0
            && (r as usize) < rows
            && (c as usize) < cols
            && frame[[r as usize, c as usize]]
    };
    let mut points = Vec::new();
    for ((r, c), &v) in frame.indexed_iter() {
        if !v {
            continue;
        }
        let (ri, ci) = (r as isize, c as isize);
        for (dr, dc) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
            if !on(ri + dr, ci + dc) {
                points.push([
                    (c as f64 + 0.5 * dc as f64) * col_mm,
                    (r as f64 + 0.5 * dr as f64) * row_mm,
                ]);
            }
        }
    }
    points
}

/// The least-squares ellipse through `points` (x, y): Fitzgibbon's direct fit in
/// Halíř–Flusser form on normalised coordinates.
pub fn fit_ellipse(points: &[[f64; 2]]) -> Result<Ellipse, BiometryError> {
    if points.len() < 6 {
        return Err(BiometryError::TooFewPoints(points.len()));
    }
    let n = points.len() as f64;
    let mean = [
        points.iter().map(|p| p[0]).sum::<f64>() / n,
        points.iter().map(|p| p[1]).sum::<f64>() / n,
    ];
    let scale = (points
        .iter()
        .map(|p| (p[0] - mean[0]).powi(2) + (p[1] - mean[1]).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    if scale <= 0.0 || !scale.is_finite() {
        return Err(BiometryError::NotAnEllipse);
    }
    // Scatter blocks: D1 = [x², xy, y²], D2 = [x, y, 1].
    let (mut s1, mut s2, mut s3) = ([[0.0; 3]; 3], [[0.0; 3]; 3], [[0.0; 3]; 3]);
    for p in points {
        let (x, y) = ((p[0] - mean[0]) / scale, (p[1] - mean[1]) / scale);
        let d1 = [x * x, x * y, y * y];
        let d2 = [x, y, 1.0];
        for i in 0..3 {
            for j in 0..3 {
                s1[i][j] += d1[i] * d1[j];
                s2[i][j] += d1[i] * d2[j];
                s3[i][j] += d2[i] * d2[j];
            }
        }
    }
    let s3_inv = invert3(&s3).ok_or(BiometryError::NotAnEllipse)?;
    // T = -S3⁻¹ S2ᵀ; M = S1 + S2 T; then C1⁻¹ M.
    let s2t = transpose3(&s2);
    let t = scale3(&mul3(&s3_inv, &s2t), -1.0);
    let m = add3(&s1, &mul3(&s2, &t));
    let m = [
        [m[2][0] / 2.0, m[2][1] / 2.0, m[2][2] / 2.0],
        [-m[1][0], -m[1][1], -m[1][2]],
        [m[0][0] / 2.0, m[0][1] / 2.0, m[0][2] / 2.0],
    ];
    let a1 = real_eigenvalues3(&m)
        .into_iter()
        .filter_map(|lambda| null_vector3(&m, lambda))
        .filter(|v| 4.0 * v[0] * v[2] - v[1] * v[1] > 0.0)
        .min_by(|u, v| {
            residual(&m, u)
                .partial_cmp(&residual(&m, v))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or(BiometryError::NotAnEllipse)?;
    let a2 = matvec3(&t, &a1);
    let mut e = conic_to_ellipse([a1[0], a1[1], a1[2], a2[0], a2[1], a2[2]])
        .ok_or(BiometryError::NotAnEllipse)?;
    e.centre = [e.centre[0] * scale + mean[0], e.centre[1] * scale + mean[1]];
    e.semi_major *= scale;
    e.semi_minor *= scale;
    Ok(e)
}

/// How far `v` is from an eigenvector of `m` (the eigenvalue being the Rayleigh
/// quotient): picks the best-conditioned candidate.
fn residual(m: &[[f64; 3]; 3], v: &[f64; 3]) -> f64 {
    let mv = matvec3(m, v);
    let lambda = dot3(v, &mv) / dot3(v, v);
    (0..3).map(|i| (mv[i] - lambda * v[i]).powi(2)).sum::<f64>() / dot3(v, v)
}

/// Centre, semi-axes and angle of the ellipse `A x² + B xy + C y² + D x + E y + F = 0`.
fn conic_to_ellipse([a, b, c, d, e, f]: [f64; 6]) -> Option<Ellipse> {
    let den = b * b - 4.0 * a * c;
    if den >= 0.0 {
        return None;
    }
    let x0 = (2.0 * c * d - b * e) / den;
    let y0 = (2.0 * a * e - b * d) / den;
    let f0 = a * x0 * x0 + b * x0 * y0 + c * y0 * y0 + d * x0 + e * y0 + f;
    let mid = (a + c) / 2.0;
    let half = (((a - c) / 2.0).powi(2) + (b / 2.0).powi(2)).sqrt();
    let (l_small, l_large) = (mid - half, mid + half);
    let (r_major, r_minor) = (-f0 / l_small, -f0 / l_large);
    if !(r_major > 0.0 && r_minor > 0.0) {
        return None;
    }
    // The major axis is the eigenvector of the smaller eigenvalue of [[A, B/2], [B/2, C]].
    let v1 = [b / 2.0, l_small - a];
    let v2 = [l_small - c, b / 2.0];
    let v = if v1[0].hypot(v1[1]) >= v2[0].hypot(v2[1]) {
        v1
    } else {
        v2
    };
    let mut angle = if v[0].hypot(v[1]) < 1e-15 {
        0.0
    } else {
        v[1].atan2(v[0])
    };
    if angle > std::f64::consts::FRAC_PI_2 {
        angle -= std::f64::consts::PI;
    } else if angle <= -std::f64::consts::FRAC_PI_2 {
        angle += std::f64::consts::PI;
    }
    Some(Ellipse {
        centre: [x0, y0],
        semi_major: r_major.sqrt(),
        semi_minor: r_minor.sqrt(),
        angle,
    })
}

type M3 = [[f64; 3]; 3];

fn mul3(a: &M3, b: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}
fn add3(a: &M3, b: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| a[i][j] + b[i][j]))
}
fn scale3(a: &M3, s: f64) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| a[i][j] * s))
}
fn transpose3(a: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| a[j][i]))
}
fn matvec3(a: &M3, v: &[f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| (0..3).map(|k| a[i][k] * v[k]).sum())
}
fn dot3(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross3(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn det3(a: &M3) -> f64 {
    dot3(&a[0], &cross3(&a[1], &a[2]))
}
fn invert3(a: &M3) -> Option<M3> {
    let det = det3(a);
    if det.abs() < 1e-300 || !det.is_finite() {
        return None;
    }
    // Rows of the inverse transpose are the cross products of the other two rows.
    let cof = [
        cross3(&a[1], &a[2]),
        cross3(&a[2], &a[0]),
        cross3(&a[0], &a[1]),
    ];
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| cof[j][i] / det)
    }))
}

/// The real roots of `det(M − λI) = 0`.
fn real_eigenvalues3(m: &M3) -> Vec<f64> {
    // λ³ + p2 λ² + p1 λ + p0 = 0.
    let tr = m[0][0] + m[1][1] + m[2][2];
    let minors = m[0][0] * m[1][1] - m[0][1] * m[1][0] + m[0][0] * m[2][2] - m[0][2] * m[2][0]
        + m[1][1] * m[2][2]
        - m[1][2] * m[2][1];
    let (p2, p1, p0) = (-tr, minors, -det3(m));
    // Depressed cubic t³ + p t + q with λ = t − p2/3.
    let shift = -p2 / 3.0;
    let p = p1 - p2 * p2 / 3.0;
    let q = 2.0 * p2.powi(3) / 27.0 - p2 * p1 / 3.0 + p0;
    let disc = (q / 2.0).powi(2) + (p / 3.0).powi(3);
    if p.abs() < 1e-300 {
        return vec![(-q).cbrt() + shift];
    }
    if disc > 0.0 {
        let sq = disc.sqrt();
        vec![(-q / 2.0 + sq).cbrt() + (-q / 2.0 - sq).cbrt() + shift]
    } else {
        let r = (-p / 3.0).sqrt();
        let phi = (-q / (2.0 * r.powi(3))).clamp(-1.0, 1.0).acos();
        (0..3)
            .map(|k| 2.0 * r * ((phi + 2.0 * std::f64::consts::PI * k as f64) / 3.0).cos() + shift)
            .collect()
    }
}

/// A unit vector spanning the null space of `M − λI` (the best-conditioned cross
/// product of two of its rows); `None` when every cross product vanishes.
fn null_vector3(m: &M3, lambda: f64) -> Option<[f64; 3]> {
    let mut a = *m;
    for (i, row) in a.iter_mut().enumerate() {
        row[i] -= lambda;
    }
    let best = [
        cross3(&a[0], &a[1]),
        cross3(&a[0], &a[2]),
        cross3(&a[1], &a[2]),
    ]
    .into_iter()
    .max_by(|u, v| {
        dot3(u, u)
            .partial_cmp(&dot3(v, v))
            .unwrap_or(std::cmp::Ordering::Equal)
    })?;
    let norm = dot3(&best, &best).sqrt();
    (norm > 1e-300 && norm.is_finite()).then(|| best.map(|x| x / norm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn sample(cx: f64, cy: f64, a: f64, b: f64, angle: f64, n: usize) -> Vec<[f64; 2]> {
        (0..n)
            .map(|i| {
                let t = i as f64 / n as f64 * std::f64::consts::TAU;
                let (x, y) = (a * t.cos(), b * t.sin());
                [
                    cx + x * angle.cos() - y * angle.sin(),
                    cy + x * angle.sin() + y * angle.cos(),
                ]
            })
            .collect()
    }

    #[test]
    fn the_fit_is_exact_on_a_sampled_rotated_ellipse() {
        for angle_deg in [0.0_f64, 17.0, 45.0, 90.0, -63.0] {
            let angle = angle_deg.to_radians();
            let e = fit_ellipse(&sample(120.5, -33.0, 47.0, 31.0, angle, 200)).unwrap();
            assert!((e.centre[0] - 120.5).abs() < 1e-6, "{e:?}");
            assert!((e.centre[1] + 33.0).abs() < 1e-6, "{e:?}");
            assert!((e.semi_major - 47.0).abs() < 1e-6, "{e:?}");
            assert!((e.semi_minor - 31.0).abs() < 1e-6, "{e:?}");
            let mut d = (e.angle - angle).rem_euclid(std::f64::consts::PI);
            if d > std::f64::consts::FRAC_PI_2 {
                d -= std::f64::consts::PI;
            }
            assert!(d.abs() < 1e-6, "angle {} vs {angle}", e.angle);
        }
        // A circle: both axes equal, any angle.
        let c = fit_ellipse(&sample(0.0, 0.0, 10.0, 10.0, 0.0, 50)).unwrap();
        assert!((c.semi_major - 10.0).abs() < 1e-6 && (c.semi_minor - 10.0).abs() < 1e-6);
    }

    #[test]
    fn ramanujan_matches_known_perimeters() {
        // Circle: 2πr exactly; a 2:1 ellipse (a = 2, b = 1): 9.688448220547675.
        assert!((ramanujan_perimeter(3.0, 3.0) - 6.0 * std::f64::consts::PI).abs() < 1e-12);
        assert!((ramanujan_perimeter(2.0, 1.0) - 9.688448220547675).abs() < 1e-3);
    }

    #[test]
    fn a_digitised_rotated_ellipse_measures_within_half_a_percent() {
        // Pixel centres inside an ellipse of semi-axes 60 x 40 px at 25°, with anisotropic
        // spacing 0.2 mm (rows) x 0.25 mm (columns): the mm ellipse is what we measure.
        let (a, b, angle) = (60.0_f64, 40.0_f64, 25f64.to_radians());
        let mask = Array2::from_shape_fn((160, 200), |(r, c)| {
            let (x, y) = (c as f64 - 100.3, r as f64 - 80.6);
            let u = x * angle.cos() + y * angle.sin();
            let v = -x * angle.sin() + y * angle.cos();
            (u / a).powi(2) + (v / b).powi(2) <= 1.0
        });
        // Isotropic first: axes in mm are the pixel axes times the spacing.
        let bio = head_biometry(mask.view(), Some([0.25, 0.25])).unwrap();
        assert!(
            (bio.ofd_mm / (2.0 * a * 0.25) - 1.0).abs() < 0.005,
            "{bio:?}"
        );
        assert!(
            (bio.bpd_mm / (2.0 * b * 0.25) - 1.0).abs() < 0.005,
            "{bio:?}"
        );
        let hc = ramanujan_perimeter(a * 0.25, b * 0.25);
        assert!((bio.hc_mm / hc - 1.0).abs() < 0.005, "{bio:?}");
        // A hole (an exclusive-class ventricle) does not change the fit.
        let mut holed = mask.clone();
        holed.slice_mut(ndarray::s![70..90, 90..110]).fill(false);
        let again = head_biometry(holed.view(), Some([0.25, 0.25])).unwrap();
        assert!((again.hc_mm - bio.hc_mm).abs() < 1e-9);
        assert!(area_mm2(holed.view(), None).is_none());
        assert_eq!(
            head_biometry(mask.view(), None),
            Err(BiometryError::NoCalibration)
        );
        let empty = Array2::from_elem((5, 5), false);
        assert_eq!(
            head_biometry(empty.view(), Some([1.0, 1.0])),
            Err(BiometryError::TooFewPoints(0))
        );
    }
}
