//! Where the anatomy of the synthetic fetal head image goes for a seed, and the check that
//! it went where the truth promises.
//!
//! The scene is laid out for a 959 x 661 image and scaled with the image size: a curved
//! probe's sector from the top centre, the head (an ellipse, rotated up to ±15°) in the
//! middle of it, the cavum septi pellucidi on the midline in the anterior third and one
//! lateral ventricle in the posterior half of the far hemisphere.

use super::fetal_truth::{FetalHeadTruth, StructurePixels};
use super::rng::{SplitMix64, stream};
use super::shapes2d::{Ellipse, UsSector};
use super::us_phantom::LEVELS_NOTE;
use super::{FetalUsParams, SynthError};

/// Pixel size at the reference image size (959 x 661), mm.
const REFERENCE_SPACING_MM: f64 = 0.2;
/// The LV must stay this far (reference pixels) inside the inner skull.
const LV_MARGIN: f64 = 30.0;

/// Place the sector and the anatomy for `params` (UIDs and pixel counts left empty), and
/// check that every structure sits where the truth promises.
pub(crate) fn layout(params: &FetalUsParams) -> Result<FetalHeadTruth, SynthError> {
    let (w, h) = (params.width, params.height);
    let k = (w as f64 / 959.0).min(h as f64 / 661.0);
    let mut rng = SplitMix64::new(stream(params.seed, &[0xFE7A]));
    // Values the truth file shows are rounded to 1/100 px or degree, for reading.
    let round = |v: f64| (v * 100.0).round() / 100.0;

    // The apex sits on whole pixels, so the region calibration can name it as its
    // reference pixel exactly.
    let sector = UsSector {
        apex: [((w - 1) / 2) as f64, -(40.0 * k).round()],
        radii: [round(60.0 * k), round(700.0 * k)],
        half_angle_deg: 43.0,
    };
    let angle = round(rng.range(-15.0, 15.0));
    let centre = [
        round(sector.apex[0] + rng.range(-3.0, 3.0) * k),
        round(352.0 * k + rng.range(-3.0, 3.0) * k),
    ];
    // The front of the head (the forehead) points to +first axis or to -first axis.
    let front = if rng.next_u64().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    };
    let skull_outer = Ellipse {
        centre,
        semi_axes: [round(258.0 * k), round(198.0 * k)],
        angle_deg: angle,
    };
    let thickness = round(14.0 * k);
    let skull_inner = Ellipse {
        semi_axes: skull_outer.semi_axes.map(|a| a - thickness),
        ..skull_outer
    };
    let [a, b] = skull_inner.semi_axes;
    let on_head = |u: f64, v: f64| skull_inner.point(u / a, v / b).map(round);
    // CSP: on the midline, a third of the way from the front end (a/3 in front of the centre).
    let csp = Ellipse {
        centre: on_head(front * a / 3.0, 0.0),
        semi_axes: [round(34.0 * k), round(18.0 * k)],
        angle_deg: angle,
    };
    // LV: posterior half, in the far (lower, +second axis) hemisphere.
    let lv = Ellipse {
        centre: on_head(-front * 0.36 * a, 0.42 * b),
        semi_axes: [round(60.0 * k), round(20.0 * k)],
        angle_deg: angle,
    };
    let spacing = REFERENCE_SPACING_MM / k;
    let truth = FetalHeadTruth {
        study_uid: String::new(),
        sop_instance_uid: String::new(),
        seed: params.seed,
        rows: h,
        columns: w,
        frames: params.frames,
        pixel_spacing_mm: [spacing, spacing],
        note: format!(
            "Synthetic fetal head ultrasound, {w} x {h}, {} frame(s), seed {}. A pixel belongs to \
             a structure iff its centre lies inside the structure's ellipse: brain = inside \
             skull_inner (includes csp and lv). {LEVELS_NOTE}",
            params.frames, params.seed
        ),
        sector,
        skull_outer,
        skull_inner,
        csp,
        lv,
        pixels: StructurePixels {
            brain: 0,
            csp: 0,
            lv: 0,
        },
    };
    check_layout(&truth, LV_MARGIN * k)?;
    Ok(truth)
}

/// The promises the truth makes: the head inside the sector, the CSP and the LV inside the
/// brain, apart, and the LV at least `lv_margin` px inside the skull.
fn check_layout(t: &FetalHeadTruth, lv_margin: f64) -> Result<(), SynthError> {
    let fail = |why: &str| {
        Err(SynthError::InvalidParams(format!(
            "the fetal head does not fit a {} x {} image: {why}",
            t.columns, t.rows
        )))
    };
    for r in 0..t.rows {
        for c in 0..t.columns {
            let (x, y) = (c as f64, r as f64);
            let in_csp = t.csp.contains(x, y);
            let in_lv = t.lv.contains(x, y);
            if t.skull_outer.contains(x, y) && !t.sector.contains(x, y) {
                return fail("the head leaves the sector");
            }
            if (in_csp || in_lv) && !t.skull_inner.contains(x, y) {
                return fail("a structure leaves the brain");
            }
            if in_csp && in_lv {
                return fail("the CSP and the ventricle overlap");
            }
        }
    }
    // Distance from the ventricle's outline to the skull's inner outline, sampled finely
    // enough (under half a pixel along the skull) to be within a few hundredths of a pixel.
    let outline = |e: &Ellipse, n: usize| -> Vec<[f64; 2]> {
        (0..n)
            .map(|i| e.boundary_point(std::f64::consts::TAU * i as f64 / n as f64))
            .collect()
    };
    let skull = outline(&t.skull_inner, 4096);
    let inside = outline(&t.lv, 720).iter().all(|p| {
        skull
            .iter()
            .all(|q| (p[0] - q[0]).hypot(p[1] - q[1]) >= lv_margin)
    });
    if !inside {
        return fail("the ventricle is too close to the skull");
    }
    Ok(())
}
