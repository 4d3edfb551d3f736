//! `segnode check-config` as an administrator uses it before starting the node: it checks
//! the enabled pipelines too (definitions, model files, destinations) and fails, naming
//! the fix, when something would stop the node at start-up.

use std::path::Path;
use std::process::Command;

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_segnode"))
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .expect("run segnode check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn config(dir: &Path, models_dir: &Path) -> std::path::PathBuf {
    let path = dir.join("segnode.toml");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        &path,
        format!(
            "[node]\nae_title = 'SEGNODE'\nbind = '127.0.0.1'\nport = 11112\ndata_dir = '{}'\n\
             [pipelines]\nenabled = ['dce_breast', 'fetal_head_us']\n\
             definitions_dir = '{}'\nmodels_dir = '{}'\n",
            dir.join("data").display(),
            repo.join("conf/pipelines").display(),
            models_dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_checks_the_pipelines_models() {
    let tmp = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(
        models.join("fetal_head_phantom.pt").is_file(),
        "run `make models` (make test does)"
    );
    let (ok, text) = check(&config(tmp.path(), &models));
    assert!(ok, "{text}");
    assert!(
        text.contains("pipeline fetal_head_us") && text.contains("per instance"),
        "{text}"
    );
    assert!(text.contains("config OK"), "{text}");
    // The admin HTTP server's effective settings are shown, defaults included.
    assert!(
        text.contains("HttpConfig") && text.contains("port: 8080") && text.contains("127.0.0.1"),
        "{text}"
    );

    let (ok, text) = check(&config(tmp.path(), &tmp.path().join("no-models")));
    assert!(!ok, "missing models must fail:\n{text}");
    assert!(
        text.contains("MISSING") && text.contains("make models"),
        "{text}"
    );
    assert!(text.contains("2 problem(s)"), "{text}");
}
