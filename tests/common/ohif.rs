//! OHIF's SEG code as a test peer: `tests/helpers/ohif_seg.mjs` loads a SEG onto its
//! source series with the npm packages OHIF 3.13.2 pins (installed by `make setup` into
//! `SEGNODE_OHIF_NODE`, default `~/.cache/segnode/ohif-node`), for each load order asked
//! for, and reports what the viewer would show; `tests/helpers/seg_expected.py` gives
//! highdicom's reading of the same SEG to compare with.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::python;

/// What the harness reports for one SEG.
#[derive(Debug, Deserialize)]
pub struct Report {
    /// NumberOfFrames of the SEG.
    pub frames: usize,
    /// Segment numbers of the Segment Sequence.
    pub segments: Vec<u16>,
    /// SeriesInstanceUID of each series offered, in request order.
    pub series_uids: Vec<String>,
    /// Set pixels over all SEG frames, decoded by the standard (not by OHIF).
    pub frame_set_pixels: usize,
    /// One entry per load order.
    pub loads: Vec<Load>,
}

/// What OHIF shows for one load order.
#[derive(Debug, Deserialize)]
pub struct Load {
    /// Indices into the request's series, in the order they were loaded.
    pub order: Vec<usize>,
    /// Loaded series the SEG's ReferencedSeriesSequence points at.
    pub referenced_display_sets: usize,
    /// The series OHIF attaches the SEG to (the first of those, in load order).
    pub attached_series: Option<String>,
    /// Images (frames) of that series.
    #[serde(default)]
    pub images: usize,
    /// SEG frames the adapter placed on an image.
    #[serde(default)]
    pub frames_placed: usize,
    /// Set pixels over OHIF's labelmaps (per segment).
    #[serde(default)]
    pub set_pixels: usize,
    /// Pixels where OHIF's labelmaps differ from the SEG frames referencing each image.
    #[serde(default)]
    pub mismatch_vs_frames: usize,
    /// Pixels where they differ from highdicom's reading.
    pub mismatch_vs_highdicom: Option<usize>,
    /// What the adapter threw, if it did.
    pub error: Option<String>,
}

impl Load {
    /// Whether OHIF showed the SEG on `series` exactly as the file says: no error, every
    /// frame placed, labelmaps equal to the frames and to highdicom's reading.
    pub fn shows_exactly(&self, series: &str, frames: usize) -> bool {
        self.error.is_none()
            && self.attached_series.as_deref() == Some(series)
            && self.frames_placed == frames
            && self.mismatch_vs_frames == 0
            && self.mismatch_vs_highdicom == Some(0)
    }
}

/// The folder `make setup` installed OHIF's packages into.
pub fn node_dir() -> PathBuf {
    let dir = std::env::var_os("SEGNODE_OHIF_NODE")
        .map(PathBuf::from)
        .or_else(|| option_env!("SEGNODE_OHIF_NODE").map(PathBuf::from))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/segnode/ohif-node")
        });
    assert!(
        dir.join("node_modules/@cornerstonejs/adapters").is_dir(),
        "OHIF's SEG packages are not in {}: run `make setup` (it installs them with npm)",
        dir.display()
    );
    dir
}

/// Every order of `0..n`.
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// What a load request may change.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Load orders (indices into the series); default: the given order only.
    pub orders: Vec<Vec<usize>>,
    /// An experiment: give the SEG this shared ImageOrientationPatient before OHIF reads
    /// it (what the adapter needs for images without patient geometry).
    pub plane_orientation: Option<[f64; 6]>,
}

/// Load `seg` onto the study made of `series` (each a list of files) as OHIF does.
pub fn load(seg: &Path, series: &[Vec<PathBuf>], options: &Options) -> Report {
    let work = seg.with_extension("ohif");
    std::fs::create_dir_all(&work).unwrap();
    let expected = work.join("highdicom.json");
    let out = Command::new(python::python())
        .arg(python::helper("seg_expected.py"))
        .arg(seg)
        .arg(&expected)
        .output()
        .expect("run seg_expected.py");
    assert!(
        out.status.success(),
        "highdicom cannot read {}: {}",
        seg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let orders = if options.orders.is_empty() {
        vec![(0..series.len()).collect()]
    } else {
        options.orders.clone()
    };
    let request = serde_json::json!({
        "seg": seg,
        "series": series,
        "orders": orders,
        "expected": expected,
        "plane_orientation": options.plane_orientation,
    });
    let request_path = work.join("request.json");
    std::fs::write(&request_path, request.to_string()).unwrap();
    let out = Command::new(super::require_tool("node"))
        .arg(python::helper("ohif_seg.mjs"))
        .arg(&request_path)
        .env("SEGNODE_OHIF_NODE", node_dir())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the OHIF harness failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "harness output is not a report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
