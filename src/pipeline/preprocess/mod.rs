//! Preprocessing between the channel stack and the model: intensity normalisation per
//! channel, and resampling of the whole volume onto the grid the model was trained on (and
//! of its output back onto the source grid).
//!
//! - [`normalise`] applies a [`Normalisation`] to each channel of a `[C, D, H, W]` array.
//! - [`to_model_grid`] / [`from_model_grid`] resample separably (one linear pass per axis,
//!   which for an axis-aligned scaling equals trilinear interpolation) between the source
//!   grid and a [`TargetGrid`], and are exact inverses geometrically: see
//!   [`ModelGridMapping`] for the voxel-centre convention.

mod normalise;
mod resample;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use normalise::normalise;
pub use resample::{ModelGridMapping, from_model_grid, to_model_grid};

/// How the intensities of each channel are normalised before the model sees them.
/// Statistics are taken per channel (never across channels).
///
/// In config files: `"per_slice_minmax"`, `"volume_minmax"`, `"zscore"`, `"none"`,
/// `{ percentile = { low = 0.5, high = 99.5 } }` or `{ range = { low = 0.0, high = 255.0 } }`; on the command line ([`FromStr`]) also
/// `"percentile"` (0.5 and 99.5) or `"percentile(1,99)"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalisation {
    /// Each slice of each channel scaled to \[0, 1\] by its own min and max. This is what
    /// the old service did; it destroys the contrast between slices, so use it only for a
    /// model trained that way.
    #[serde(rename = "per_slice_minmax")]
    PerSliceMinMax,
    /// Each channel scaled to \[0, 1\] by its min and max over the whole volume.
    #[serde(rename = "volume_minmax")]
    VolumeMinMax,
    /// Each channel shifted to mean 0 and scaled to standard deviation 1.
    #[serde(rename = "zscore")]
    ZScore,
    /// Each channel clipped to its `low`..`high` percentiles (0–100, linear interpolation
    /// between order statistics as numpy's default) and scaled to \[0, 1\].
    Percentile {
        /// Lower percentile, 0–100.
        low: f64,
        /// Upper percentile, 0–100, above `low`.
        high: f64,
    },
    /// Each channel clipped to the fixed range `low`..`high` and scaled to \[0, 1\] (for
    /// example 0..255 for 8-bit ultrasound): the same mapping for every image, whatever
    /// its content.
    Range {
        /// Value mapped to 0.
        low: f64,
        /// Value mapped to 1, above `low`.
        high: f64,
    },
    /// Intensities passed through unchanged.
    None,
}

impl Normalisation {
    /// Check the percentiles; the other variants are always valid.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Normalisation::Percentile { low, high }
                if !(0.0 <= low && low < high && high <= 100.0) =>
            {
                Err(format!(
                    "percentile bounds must satisfy 0 <= low < high <= 100, got low = {low}, high = {high}"
                ))
            }
            Normalisation::Range { low, high }
                if !(low.is_finite() && high.is_finite() && low < high) =>
            {
                Err(format!(
                    "range bounds must be finite with low < high, got low = {low}, high = {high}"
                ))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Normalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalisation::PerSliceMinMax => f.write_str("per_slice_minmax"),
            Normalisation::VolumeMinMax => f.write_str("volume_minmax"),
            Normalisation::ZScore => f.write_str("zscore"),
            Normalisation::Percentile { low, high } => write!(f, "percentile({low},{high})"),
            Normalisation::Range { low, high } => write!(f, "range({low},{high})"),
            Normalisation::None => f.write_str("none"),
        }
    }
}

impl FromStr for Normalisation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let parsed = match s.as_str() {
            "per_slice_minmax" => Normalisation::PerSliceMinMax,
            "volume_minmax" => Normalisation::VolumeMinMax,
            "zscore" => Normalisation::ZScore,
            "none" => Normalisation::None,
            "percentile" => Normalisation::Percentile {
                low: 0.5,
                high: 99.5,
            },
            other => {
                let args = |prefix: &str| {
                    other
                        .strip_prefix(prefix)
                        .and_then(|r| r.strip_suffix(')'))
                        .and_then(|r| r.split_once(','))
                        .and_then(|(l, h)| Some((l.trim().parse().ok()?, h.trim().parse().ok()?)))
                };
                if let Some((low, high)) = args("percentile(") {
                    Normalisation::Percentile { low, high }
                } else if let Some((low, high)) = args("range(") {
                    Normalisation::Range { low, high }
                } else {
                    return Err(format!(
                        "unknown normalisation {s:?}: use per_slice_minmax, volume_minmax, zscore, \
                         percentile, percentile(LOW,HIGH), range(LOW,HIGH) or none"
                    ));
                }
            }
        };
        parsed.validate()?;
        Ok(parsed)
    }
}

/// The grid the model runs on.
///
/// In config files: `{ shape = [96, 96, 96] }`, `{ spacing = [1.5, 0.7, 0.7] }`,
/// `{ in_plane = [256, 256] }` or `"native"`. Axes are `[slice, row, col]` like the source
/// volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetGrid {
    /// The whole volume resampled to this many voxels per axis (e.g. 96x96x96, as the
    /// original DCE model was trained), covering exactly the source field of view.
    Shape([usize; 3]),
    /// The whole volume resampled to about this voxel size (mm); the voxel count per axis
    /// is rounded and the spacing adjusted so the grid covers exactly the source field of
    /// view.
    Spacing([f64; 3]),
    /// Each slice (or image frame) resized to `[rows, cols]`; the slice axis is kept. For
    /// 2D models trained on a fixed input size.
    InPlane([usize; 2]),
    /// The source grid itself.
    Native,
}

impl TargetGrid {
    /// Check that every dimension is positive (call at config load).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            TargetGrid::Shape(s) if s.contains(&0) => {
                Err(format!("target shape {s:?} has a zero dimension"))
            }
            TargetGrid::InPlane(s) if s.contains(&0) => {
                Err(format!("target in-plane size {s:?} has a zero dimension"))
            }
            TargetGrid::Spacing(s) if !s.iter().all(|v| v.is_finite() && *v > 0.0) => {
                Err(format!("target spacing {s:?} mm must be positive"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_names_round_trip() {
        for n in [
            Normalisation::PerSliceMinMax,
            Normalisation::VolumeMinMax,
            Normalisation::ZScore,
            Normalisation::Percentile {
                low: 1.0,
                high: 99.0,
            },
            Normalisation::Range {
                low: 0.0,
                high: 255.0,
            },
            Normalisation::None,
        ] {
            assert_eq!(n.to_string().parse::<Normalisation>(), Ok(n));
        }
        assert_eq!(
            "percentile".parse(),
            Ok(Normalisation::Percentile {
                low: 0.5,
                high: 99.5
            })
        );
        assert!("percentile(90,10)".parse::<Normalisation>().is_err());
        assert!(
            "minmax"
                .parse::<Normalisation>()
                .unwrap_err()
                .contains("volume_minmax")
        );
    }

    #[test]
    fn config_forms_deserialise() {
        #[derive(Deserialize)]
        struct C {
            n: Vec<Normalisation>,
            t: Vec<TargetGrid>,
        }
        let c: C = toml::from_str(
            r#"n = ["per_slice_minmax", "zscore", { percentile = { low = 1.0, high = 99.0 } }, "none"]
               t = [{ shape = [96, 96, 96] }, { spacing = [1.5, 0.7, 0.7] }, "native", { in_plane = [256, 192] }]"#,
        )
        .unwrap();
        assert_eq!(c.n[0], Normalisation::PerSliceMinMax);
        assert_eq!(
            c.n[2],
            Normalisation::Percentile {
                low: 1.0,
                high: 99.0
            }
        );
        assert_eq!(
            c.t,
            vec![
                TargetGrid::Shape([96; 3]),
                TargetGrid::Spacing([1.5, 0.7, 0.7]),
                TargetGrid::Native,
                TargetGrid::InPlane([256, 192])
            ]
        );
        assert!(TargetGrid::Shape([96, 0, 96]).validate().is_err());
    }
}
