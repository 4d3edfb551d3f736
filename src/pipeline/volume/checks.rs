//! Geometry checks on the slice positions of one series, once sorted along the normal:
//! regular spacing (a missing slice is an error, never interpolated over) and stacking
//! along the normal (no shear).

use super::VolumeError;
use super::grid::{dot, norm, scale, sub};

/// A gap may deviate from the series spacing by this fraction (or by
/// [`GAP_TOLERANCE_FLOOR_MM`], whichever is larger) and still count as regular.
const GAP_TOLERANCE_FRACTION: f64 = 0.01;
/// See [`GAP_TOLERANCE_FRACTION`]; covers DS rounding of positions.
const GAP_TOLERANCE_FLOOR_MM: f64 = 0.01;
/// A slice may sit this fraction of the smaller pixel spacing off the line along the
/// normal through the first slice.
const SHEAR_TOLERANCE_PIXELS: f64 = 0.1;

/// The centre-to-centre slice spacing of `positions` (sorted along `normal`), after
/// checking that every gap equals it (a larger gap is a missing slice). A single slice has
/// no gap and takes `single_slice_mm`.
pub(super) fn check_spacing(
    series: &str,
    positions: &[[f64; 3]],
    normal: [f64; 3],
    single_slice_mm: f64,
) -> Result<f64, VolumeError> {
    let n = positions.len();
    if n < 2 {
        return Ok(single_slice_mm);
    }
    let distances: Vec<f64> = positions.iter().map(|p| dot(*p, normal)).collect();
    let gaps: Vec<f64> = distances.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let expected = sorted[sorted.len() / 2];
    let tolerance = (expected * GAP_TOLERANCE_FRACTION).max(GAP_TOLERANCE_FLOOR_MM);
    if let Some(i) = gaps.iter().position(|g| (g - expected).abs() > tolerance) {
        let ratio = gaps[i] / expected;
        let hint = if ratio > 1.5 {
            let missing = (ratio.round() as usize).saturating_sub(1).max(1);
            format!(
                "about {missing} slice(s) are missing there — wait for the sender to deliver \
                 the complete series or resend it"
            )
        } else {
            "the slices are unevenly spaced and do not form one regular volume — select \
             another series"
                .to_string()
        };
        return Err(VolumeError::SliceGap {
            series: series.to_string(),
            expected_mm: expected,
            found_mm: gaps[i],
            after: i + 1,
            slices: n,
            position_mm: distances[i],
            hint,
        });
    }
    Ok((distances[n - 1] - distances[0]) / (n - 1) as f64)
}

/// Check that every slice lies on the line through the first slice along the normal.
pub(super) fn check_stacked(
    series: &str,
    positions: &[[f64; 3]],
    normal: [f64; 3],
    pixel_spacing: [f64; 2],
) -> Result<(), VolumeError> {
    let tolerance = SHEAR_TOLERANCE_PIXELS * pixel_spacing[0].min(pixel_spacing[1]);
    for (k, p) in positions.iter().enumerate() {
        let d = sub(*p, positions[0]);
        let offset = norm(sub(d, scale(normal, dot(d, normal))));
        if offset > tolerance {
            return Err(VolumeError::Sheared {
                series: series.to_string(),
                slice: k + 1,
                offset_mm: offset,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: [f64; 3] = [0.0, 0.0, 1.0];

    fn stack(distances: &[f64]) -> Vec<[f64; 3]> {
        distances.iter().map(|&z| [4.0, -2.0, z]).collect()
    }

    #[test]
    fn regular_stacks_give_their_spacing() {
        let spacing = check_spacing("1.2", &stack(&[-3.0, -1.5, 0.0, 1.5, 3.0]), Z, 9.0).unwrap();
        assert!((spacing - 1.5).abs() < 1e-12);
        // DS rounding of positions is tolerated.
        let spacing = check_spacing("1.2", &stack(&[0.0, 1.5004, 2.9998, 4.5]), Z, 9.0).unwrap();
        assert!((spacing - 1.5).abs() < 1e-9);
        assert_eq!(check_spacing("1.2", &stack(&[7.0]), Z, 2.5).unwrap(), 2.5);
    }

    #[test]
    fn gaps_are_reported_with_where_and_how_much() {
        let err =
            check_spacing("1.2.3", &stack(&[0.0, 1.5, 3.0, 7.5, 9.0, 10.5]), Z, 1.0).unwrap_err();
        match err {
            VolumeError::SliceGap {
                ref series,
                expected_mm,
                found_mm,
                after,
                slices,
                position_mm,
                ref hint,
            } => {
                assert_eq!(series, "1.2.3");
                assert_eq!(
                    (expected_mm, found_mm, after, slices, position_mm),
                    (1.5, 4.5, 3, 6, 3.0)
                );
                assert!(hint.contains("about 2 slice(s) are missing"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
        let err =
            check_spacing("1.2.3", &stack(&[0.0, 1.5, 3.0, 4.0, 5.5, 7.0]), Z, 1.0).unwrap_err();
        assert!(err.to_string().contains("unevenly spaced"), "{err}");
    }

    #[test]
    fn sheared_stacks_are_refused() {
        let mut positions = stack(&[0.0, 1.0, 2.0]);
        check_stacked("1.2", &positions, Z, [0.5, 0.5]).unwrap();
        positions[2][0] += 0.2;
        match check_stacked("1.2", &positions, Z, [0.5, 0.5]) {
            Err(VolumeError::Sheared {
                slice: 3,
                offset_mm,
                ..
            }) => assert!((offset_mm - 0.2).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
    }
}
