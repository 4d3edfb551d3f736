//! A node with the shipped DCE pipeline sized for small test studies: the pipeline file
//! with checked edits, the models folder, a small synthetic study.

use std::path::{Path, PathBuf};

use segnode::synth::{DceParams, Orientation, SynthStudy, write_dce_study};

/// Slices of [`small_study`]; the test pipelines use it as `min_slices`.
pub const SLICES: usize = 24;

/// The shipped pipeline text without its measurement report (`output.report`): the node
/// suites count and inspect the SEGs a job delivers, and `tests/report_sr.rs` covers the
/// report on its own.
pub fn without_report(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("report = {"))
        .collect();
    kept.join("\n") + "\n"
}

/// Write `<dir>/pipelines/<name>.toml`: the shipped pipeline `name` [`without_report`],
/// with `min_slices` lowered to [`SLICES`] and each `(from, to)` edit applied (checked, as
/// `node::write_pipeline` does). Returns the folder.
pub fn pipelines_dir(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let min = format!("min_slices = {SLICES}");
    let edits: Vec<(&str, &str)> = [("min_slices = 96", min.as_str())]
        .into_iter()
        .chain(edits.iter().copied())
        .collect();
    super::node::write_pipeline(dir, name, false, &edits)
}

/// The repository's models folder, which `make models` fills.
pub fn models_dir() -> PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(
        models.join("dce_kinetic.pt").is_file(),
        "models/dce_kinetic.pt is missing: run `make models` (make test does)"
    );
    models
}

/// A 4-phase study of [`SLICES`] slices of 96², with or without the localizer.
pub fn small_study(
    dir: &Path,
    orientation: Orientation,
    seed: u64,
    with_localizer: bool,
) -> SynthStudy {
    let params = DceParams {
        orientation,
        slices: SLICES,
        size: 96,
        seed,
        with_localizer,
        ..Default::default()
    };
    write_dce_study(dir, &params).unwrap()
}
