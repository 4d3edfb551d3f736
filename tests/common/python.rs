//! The project venv's Python (torch, MONAI, highdicom, pydicom), for tests that compare
//! with the Python reference implementations.

use std::path::{Path, PathBuf};

/// `SEGNODE_PYTHON` (set by `make setup` in `.cargo/config.toml`), else the default venv;
/// a failure telling the operator how to get it when neither exists.
pub fn python() -> PathBuf {
    let path = std::env::var_os("SEGNODE_PYTHON")
        .map(PathBuf::from)
        .or_else(|| option_env!("SEGNODE_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/segnode/venv/bin/python")
        });
    assert!(
        path.is_file(),
        "python {} not found: run `make setup` (it creates the torch venv and sets SEGNODE_PYTHON)",
        path.display()
    );
    path
}

/// A file of the repository's `tests/helpers/`.
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
}
