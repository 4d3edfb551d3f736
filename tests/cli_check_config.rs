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
    // The effective settings are shown as TOML, defaults included and marked.
    assert!(
        text.contains("[http]")
            && text.contains("port = 8080  # default")
            && text.contains("bind = \"127.0.0.1\"  # default"),
        "{text}"
    );
    // The TOML part parses back into a config.
    let toml_part = text.split("\npipeline ").next().unwrap();
    segnode::config::Config::from_toml(toml_part, "check-config output", None)
        .unwrap_or_else(|e| panic!("{e}\n{toml_part}"));

    let (ok, text) = check(&config(tmp.path(), &tmp.path().join("no-models")));
    assert!(!ok, "missing models must fail:\n{text}");
    assert!(
        text.contains("MISSING") && text.contains("make models"),
        "{text}"
    );
    assert!(text.contains("2 problem(s)"), "{text}");
}

/// `serve` checks the pipelines' models before it binds a port: with a model missing it
/// exits with the fix named, never having listened.
#[test]
fn serve_with_a_missing_model_fails_before_listening() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config(tmp.path(), &tmp.path().join("no-models"));
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("port = 11112", &format!("port = {port}"))
        + "[http]\nenabled = false\n";
    std::fs::write(&file, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_segnode"))
        .args(["serve", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run segnode serve");
    // Bounded: a node that went on serving is killed and fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let status = status.unwrap_or_else(|| panic!("serve kept running:\n{text}"));
    assert!(!status.success(), "{text}");
    assert!(text.contains("make models"), "the fix is named:\n{text}");
    assert!(!text.contains("listening"), "it never listened:\n{text}");
    // The port was never taken: it is still free to bind.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}
