//! Source values → 8-bit grey, the way a viewer would first show the source frame: its
//! VOI LUT window (WindowCenter/WindowWidth, PS3.3 C.11.2.1.2) when it has one, else the
//! frame's own minimum to maximum.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::ArrayView2;

/// VOILUTFunction (PS3.3 C.11.2.1.3): how the window maps values to grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    /// The default: the DICOM "LINEAR" ramp of width `w − 1` around `c − 0.5`.
    Linear,
    /// "LINEAR_EXACT": a ramp of exactly `w` around `c`.
    LinearExact,
    /// "SIGMOID": a logistic curve around `c`.
    Sigmoid,
}

/// A VOI LUT window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiWindow {
    /// WindowCenter (first value when several are given).
    pub centre: f64,
    /// WindowWidth (first value when several are given).
    pub width: f64,
    /// VOILUTFunction.
    pub function: VoiFunction,
}

impl VoiWindow {
    /// The first window of `header`, when it has a usable one (a width below 1 is not a
    /// LINEAR window; a non-positive one is none at all).
    pub fn from_header(header: &InMemDicomObject) -> Option<VoiWindow> {
        let first = |tag| -> Option<f64> {
            let text = header.get(tag)?.to_str().ok()?;
            text.split('\\').next()?.trim().parse::<f64>().ok()
        };
        let function = match header
            .get(tags::VOILUT_FUNCTION)
            .and_then(|e| e.to_str().ok())
            .as_deref()
            .map(str::trim)
        {
            Some("LINEAR_EXACT") => VoiFunction::LinearExact,
            Some("SIGMOID") => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        };
        let (centre, width) = (first(tags::WINDOW_CENTER)?, first(tags::WINDOW_WIDTH)?);
        let usable = centre.is_finite()
            && width.is_finite()
            && match function {
                VoiFunction::Linear => width >= 1.0,
                _ => width > 0.0,
            };
        usable.then_some(VoiWindow {
            centre,
            width,
            function,
        })
    }

    /// Grey level (0..=255) of value `x`.
    pub fn grey(&self, x: f64) -> u8 {
        let (c, w) = (self.centre, self.width);
        let unit = match self.function {
            VoiFunction::Linear => {
                if w <= 1.0 {
                    if x <= c - 0.5 { 0.0 } else { 1.0 }
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiFunction::LinearExact => (x - c) / w + 0.5,
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        to_u8(unit)
    }
}

/// The frame as grey levels, row-major: through `window` when given, else stretched from
/// the frame's minimum (0) to its maximum (255). Non-finite values are black.
pub fn grey_frame(frame: ArrayView2<f32>, window: Option<&VoiWindow>) -> Vec<u8> {
    match window {
        Some(w) => frame
            .iter()
            .map(|&v| {
                if v.is_finite() {
                    w.grey(f64::from(v))
                } else {
                    0
                }
            })
            .collect(),
        None => {
            let (lo, hi) = frame
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let range = f64::from(hi) - f64::from(lo);
            frame
                .iter()
                .map(|&v| {
                    if v.is_finite() && range > 0.0 {
                        to_u8((f64::from(v) - f64::from(lo)) / range)
                    } else {
                        0
                    }
                })
                .collect()
        }
    }
}

/// A value in 0..1 (clipped) as 0..=255.
fn to_u8(unit: f64) -> u8 {
    (unit.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::VR;
    use ndarray::array;

    use crate::pipeline::seg::elements::{obj, text};

    #[test]
    fn linear_window_follows_the_standard_ramp() {
        let w = VoiWindow {
            centre: 100.0,
            width: 201.0,
            function: VoiFunction::Linear,
        };
        assert_eq!(w.grey(-1.0), 0);
        assert_eq!(w.grey(99.5), 128);
        assert_eq!(w.grey(199.5), 255);
        assert_eq!(w.grey(1e9), 255);
    }

    #[test]
    fn the_header_window_is_read_with_its_function() {
        let header = obj([
            text(tags::WINDOW_CENTER, VR::DS, "40\\400"),
            text(tags::WINDOW_WIDTH, VR::DS, "80\\2000"),
            text(tags::VOILUT_FUNCTION, VR::CS, "LINEAR_EXACT"),
        ]);
        let w = VoiWindow::from_header(&header).unwrap();
        assert_eq!(
            (w.centre, w.width, w.function),
            (40.0, 80.0, VoiFunction::LinearExact)
        );
        assert_eq!(w.grey(0.0), 0);
        assert_eq!(w.grey(80.0), 255);
        let zero = obj([
            text(tags::WINDOW_CENTER, VR::DS, "40"),
            text(tags::WINDOW_WIDTH, VR::DS, "0"),
        ]);
        assert!(VoiWindow::from_header(&zero).is_none());
        assert!(VoiWindow::from_header(&obj([])).is_none());
    }

    #[test]
    fn without_a_window_the_frame_is_stretched() {
        let frame = array![[10.0f32, 20.0], [30.0, f32::NAN]];
        assert_eq!(grey_frame(frame.view(), None), [0, 128, 255, 0]);
        let flat = array![[5.0f32, 5.0]];
        assert_eq!(grey_frame(flat.view(), None), [0, 0]);
    }
}
