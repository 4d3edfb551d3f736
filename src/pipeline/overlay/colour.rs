//! Segment colours: the SEG's RecommendedDisplayCIELabValue turned into the sRGB the
//! overlay burns in, so the outline has the colour a SEG viewer shows for the segment.
//!
//! DICOM scales CIELab to 16 bits (PS3.3 C.10.7.1.1): L* 0..100 → 0..65535 and a*, b*
//! −128..127 → 0..65535. The conversion uses the D65 white point and the sRGB primaries,
//! as dcmjs (OHIF) and highdicom do, so the same value gives the same colour here and in
//! those viewers. Colours outside the sRGB gamut are clipped per channel.

/// White point D65 (CIE 1931 2°), X and Z with Y = 1.
const WHITE_X: f64 = 0.950_47;
const WHITE_Z: f64 = 1.088_83;

/// Colours for segments that carry no RecommendedDisplayCIELabValue, in segment order
/// (repeating): saturated hues that stand out on a grey image and from each other.
const PALETTE: [[u8; 3]; 6] = [
    [255, 64, 64],
    [64, 220, 64],
    [64, 128, 255],
    [255, 220, 0],
    [255, 64, 255],
    [0, 230, 230],
];

/// The sRGB colour of segment `index` (0-based): its DICOM-scaled CIELab value when it
/// has one, else the fallback palette entry.
pub fn segment_rgb(index: usize, cielab: Option<[u16; 3]>) -> [u8; 3] {
    match cielab {
        Some(lab) => dicom_lab_to_srgb(lab),
        None => PALETTE[index % PALETTE.len()],
    }
}

/// A DICOM-scaled CIELab value (0..65535 each) as 8-bit sRGB.
pub fn dicom_lab_to_srgb(value: [u16; 3]) -> [u8; 3] {
    let l = f64::from(value[0]) * 100.0 / 65535.0;
    let a = f64::from(value[1]) * 255.0 / 65535.0 - 128.0;
    let b = f64::from(value[2]) * 255.0 / 65535.0 - 128.0;
    lab_to_srgb(l, a, b)
}

/// CIELab (L* 0..100, a*, b*) as 8-bit sRGB, D65.
pub fn lab_to_srgb(l: f64, a: f64, b: f64) -> [u8; 3] {
    let fy = (l + 16.0) / 116.0;
    let fx = fy + a / 500.0;
    let fz = fy - b / 200.0;
    let x = WHITE_X * lab_f_inv(fx);
    let y = lab_f_inv(fy);
    let z = WHITE_Z * lab_f_inv(fz);
    let linear = [
        3.240_454_2 * x - 1.537_138_5 * y - 0.498_531_4 * z,
        -0.969_266_0 * x + 1.876_010_8 * y + 0.041_556_0 * z,
        0.055_643_4 * x - 0.204_025_9 * y + 1.057_225_2 * z,
    ];
    linear.map(|c| (srgb_gamma(c.clamp(0.0, 1.0)) * 255.0).round() as u8)
}

/// Inverse of the CIELab companding function.
fn lab_f_inv(t: f64) -> f64 {
    const DELTA: f64 = 6.0 / 29.0;
    if t > DELTA {
        t * t * t
    } else {
        3.0 * DELTA * DELTA * (t - 4.0 / 29.0)
    }
}

/// Linear light → sRGB-encoded value (IEC 61966-2-1).
fn srgb_gamma(c: f64) -> f64 {
    if c <= 0.003_130_8 {
        12.92 * c
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: [u8; 3], want: [u8; 3]) -> bool {
        got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 1)
    }

    #[test]
    fn known_lab_values_give_the_srgb_primaries() {
        // Published D65 CIELab coordinates of the sRGB primaries, white and mid grey.
        let cases = [
            ((53.2408, 80.0925, 67.2032), [255, 0, 0]),
            ((87.7347, -86.1827, 83.1793), [0, 255, 0]),
            ((32.2970, 79.1875, -107.8602), [0, 0, 255]),
            ((100.0, 0.0, 0.0), [255, 255, 255]),
            ((0.0, 0.0, 0.0), [0, 0, 0]),
            ((53.5850, 0.0, 0.0), [128, 128, 128]),
        ];
        for ((l, a, b), want) in cases {
            let got = lab_to_srgb(l, a, b);
            assert!(
                close(got, want),
                "Lab({l}, {a}, {b}) → {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn dicom_scaling_is_undone_before_conversion() {
        // L* 100, a* 0, b* 0 scaled as DICOM does: 65535, 128·65535/255 = 32896.
        assert!(close(
            dicom_lab_to_srgb([65535, 32896, 32896]),
            [255, 255, 255]
        ));
        // Red, scaled: L 53.24 → 34891, a 80.09 → 53480, b 67.20 → 50167.
        assert!(close(dicom_lab_to_srgb([34891, 53480, 50167]), [255, 0, 0]));
        // Out of gamut clips instead of wrapping.
        assert_eq!(dicom_lab_to_srgb([65535, 65535, 0])[0], 255);
    }

    #[test]
    fn segments_without_a_colour_take_the_palette() {
        assert_eq!(segment_rgb(0, None), PALETTE[0]);
        assert_eq!(segment_rgb(PALETTE.len() + 1, None), PALETTE[1]);
        assert_eq!(segment_rgb(0, Some([65535, 32896, 32896])), [255, 255, 255]);
    }
}
