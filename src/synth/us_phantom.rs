//! Rendering the synthetic fetal head ultrasound frame: the grey levels of the anatomy,
//! multiplicative speckle, and the burned-in annotations a scanner paints outside the
//! sector (white text blocks and a colour scale bar).
//!
//! The grey levels below are part of the contract: models trained on these images rely on
//! exactly them. Each pixel's level is decided with the truth's own tests on its centre.

use super::fetal_truth::{FetalHeadTruth, FetalStructure};
use super::rng::SplitMix64;

/// Echo level (luminance in [0, 1], before speckle) of amniotic fluid: inside the sector,
/// outside the head.
pub(crate) const LEVEL_FLUID: f64 = 0.06;
/// Level of the skull ring (between the outer and inner ellipses).
pub(crate) const LEVEL_SKULL: f64 = 0.95;
/// Level of the brain parenchyma.
pub(crate) const LEVEL_BRAIN: f64 = 0.45;
/// Level of the cavum septi pellucidi (fluid, dark).
pub(crate) const LEVEL_CSP: f64 = 0.15;
/// Level of the lateral ventricle (rendered echogenic, like the choroid plexus filling it).
pub(crate) const LEVEL_LV: f64 = 0.70;
/// Standard deviation of the multiplicative speckle: value x (1 + SPECKLE N(0, 1)).
pub(crate) const SPECKLE: f64 = 0.2;
/// The levels as the truth file states them.
pub(crate) const LEVELS_NOTE: &str = "Grey levels (luminance in [0, 1] x 255, before speckle): \
     outside the sector 0, fluid 0.06, skull 0.95, brain 0.45, csp 0.15, lv 0.70; speckle: \
     value x (1 + 0.2 N(0,1)), clipped to [0, 1]. Burned-in annotations lie outside the sector.";

/// A rectangle of annotation pixels: columns `x0..x1`, rows `y0..y1`.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// The anatomy of one image, rendered once and speckled per frame.
pub(crate) struct UsPhantom {
    /// Level of every pixel, row-major; 0 outside the sector.
    levels: Vec<f64>,
    /// Annotation pixels (row-major index and RGB colour), all outside the sector.
    overlay: Vec<(usize, [u8; 3])>,
}

impl UsPhantom {
    /// Lay out the levels and annotations of `truth`'s image.
    pub(crate) fn new(truth: &FetalHeadTruth) -> Self {
        let (rows, cols) = (truth.rows, truth.columns);
        let mut levels = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                levels.push(level(truth, r, c));
            }
        }
        let mut overlay = Vec::new();
        let mut paint = |rect: Rect, colour: &dyn Fn(usize) -> [u8; 3]| {
            for r in rect.y0..rect.y1.min(rows) {
                for c in rect.x0..rect.x1.min(cols) {
                    if !truth.sector.contains(c as f64, r as f64) {
                        overlay.push((r * cols + c, colour(r)));
                    }
                }
            }
        };
        let k = (cols as f64 / 959.0).min(rows as f64 / 661.0);
        let px = |v: f64| (v * k).round() as usize;
        // Text-like blocks: patient line, date, probe and preset at the top left, the
        // acoustic output at the top right.
        let left: [&[f64]; 4] = [
            &[40.0, 28.0, 64.0],
            &[22.0, 54.0],
            &[36.0, 36.0, 18.0],
            &[58.0, 30.0],
        ];
        let right: [&[f64]; 2] = [&[30.0, 20.0], &[26.0, 24.0]];
        for (line, words) in left.iter().enumerate() {
            let mut x = 12.0;
            for w in *words {
                let y = 10.0 + 16.0 * line as f64;
                paint(block(x, y, *w, px), &|_| [255; 3]);
                x += w + 7.0;
            }
        }
        let right_edge = cols as f64 / k - 12.0;
        for (line, words) in right.iter().enumerate() {
            let mut x = right_edge - words.iter().map(|w| w + 7.0).sum::<f64>() + 7.0;
            for w in *words {
                paint(block(x, 10.0 + 16.0 * line as f64, *w, px), &|_| [255; 3]);
                x += w + 7.0;
            }
        }
        // The colour scale bar at the right edge: orange at the top to dark blue at the bottom.
        let bar = Rect {
            x0: cols.saturating_sub(px(26.0)),
            y0: px(80.0),
            x1: cols.saturating_sub(px(12.0)),
            y1: px(300.0),
        };
        let span = (bar.y1 - bar.y0).max(2) as f64 - 1.0;
        paint(bar, &|r| ramp(1.0 - (r - bar.y0) as f64 / span));
        Self { levels, overlay }
    }

    /// One frame as interleaved 8-bit RGB, speckled from the noise stream `noise_seed`.
    pub(crate) fn render_rgb(&self, noise_seed: u64) -> Vec<u8> {
        let mut rng = SplitMix64::new(noise_seed);
        let mut out = Vec::with_capacity(self.levels.len() * 3);
        for pair in self.levels.chunks(2) {
            let (n0, n1) = rng.gaussian_pair();
            for (&level, n) in pair.iter().zip([n0, n1]) {
                let v = speckled(level, n);
                out.extend([v, v, v]);
            }
        }
        for &(i, colour) in &self.overlay {
            out[3 * i..3 * i + 3].copy_from_slice(&colour);
        }
        out
    }
}

/// The level of pixel (`r`, `c`), decided with the truth's tests on its centre.
fn level(truth: &FetalHeadTruth, r: usize, c: usize) -> f64 {
    let (x, y) = (c as f64, r as f64);
    if !truth.sector.contains(x, y) {
        0.0
    } else if truth.contains(FetalStructure::Csp, r, c) {
        LEVEL_CSP
    } else if truth.contains(FetalStructure::Lv, r, c) {
        LEVEL_LV
    } else if truth.contains(FetalStructure::Brain, r, c) {
        LEVEL_BRAIN
    } else if truth.skull_outer.contains(x, y) {
        LEVEL_SKULL
    } else {
        LEVEL_FLUID
    }
}

/// A level with multiplicative speckle `n` (a standard normal sample), as an 8-bit value.
fn speckled(level: f64, n: f64) -> u8 {
    let v = (level * (1.0 + SPECKLE * n)).clamp(0.0, 1.0);
    (v * 255.0).round() as u8
}

/// A 9-px-high text block of width `w` at (`x`, `y`) in reference pixels, scaled by `px`.
fn block(x: f64, y: f64, w: f64, px: impl Fn(f64) -> usize) -> Rect {
    Rect {
        x0: px(x),
        y0: px(y),
        x1: px(x + w),
        y1: px(y + 9.0),
    }
}

/// The colour scale at `t` in [0, 1]: dark blue (0) through blue, violet and red to
/// orange (1).
fn ramp(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [16.0, 24.0, 112.0],
        [40.0, 96.0, 220.0],
        [150.0, 70.0, 170.0],
        [235.0, 90.0, 40.0],
        [255.0, 165.0, 0.0],
    ];
    let s = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (s.floor() as usize).min(STOPS.len() - 2);
    let f = s - i as f64;
    [0, 1, 2].map(|ch| (STOPS[i][ch] + (STOPS[i + 1][ch] - STOPS[i][ch]) * f).round() as u8)
}

/// The luminance of interleaved RGB pixels, round(0.299 R + 0.587 G + 0.114 B): what a
/// MONOCHROME2 version of the image holds (grey pixels keep their value).
pub(crate) fn luminance(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let y = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            y.round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_runs_from_dark_blue_to_orange_and_is_coloured() {
        assert_eq!(ramp(0.0), [16, 24, 112]);
        assert_eq!(ramp(1.0), [255, 165, 0]);
        let mid = ramp(0.5);
        assert!(mid[0] != mid[1] || mid[1] != mid[2]);
    }

    #[test]
    fn luminance_keeps_grey_and_weights_colour() {
        assert_eq!(
            luminance(&[0, 0, 0, 77, 77, 77, 255, 255, 255]),
            vec![0, 77, 255]
        );
        assert_eq!(
            luminance(&[255, 0, 0, 0, 255, 0, 0, 0, 255]),
            vec![76, 150, 29]
        );
    }

    #[test]
    fn speckle_is_multiplicative_and_clipped() {
        assert_eq!(speckled(0.45, 0.0), 115);
        assert_eq!(speckled(0.0, 3.0), 0);
        assert_eq!(speckled(0.95, 5.0), 255);
        assert_eq!(speckled(0.5, -6.0), 0);
    }
}
