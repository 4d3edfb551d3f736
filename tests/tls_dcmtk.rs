//! DICOM TLS against DCMTK, both ways. segnode's TLS port stores what `storescu +tls`
//! sends and answers `echoscu +tls`; it refuses a client without a certificate, with one
//! from an untrusted CA, with an expired one, and a plain-TCP client, storing nothing from
//! any of them. segnode's SCU (the library and the `segnode echo/send` command) stores
//! over TLS at `storescp +tls`, and fails with a TLS error when the peer's certificate is
//! not trusted or the peer wants a client certificate it does not get.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::fixtures;
use common::storescp::Storescp;
use common::tls::{cert, client_config, dcmtk_tls_args, start_tls_node};
use common::{NODE_AE, TEST_SCU_AE, describe, run_tool, storescu};
use segnode::ae::AeTitle;
use segnode::config::Config;
use segnode::scu::{self, ScuError, ScuOptions};

fn tls_args(who: &str) -> Vec<String> {
    dcmtk_tls_args(who)
}

async fn echoscu_tls(port: u16, extra: &[String]) -> std::process::Output {
    let mut args: Vec<String> = extra.to_vec();
    args.extend(
        ["-aet", TEST_SCU_AE, "-aec", NODE_AE, "127.0.0.1"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(port.to_string());
    run_tool("echoscu", &args, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_and_echoscu_over_tls_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 5, 64, 64, 41);
    let mut node = start_tls_node(|_| {}).await;

    let out = echoscu_tls(node.port(), &tls_args("peer")).await;
    assert!(out.status.success(), "echoscu +tls: {}", describe(&out));

    let args = tls_args("peer");
    let options: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = storescu(node.port(), TEST_SCU_AE, &options, &files).await;
    assert!(out.status.success(), "storescu +tls: {}", describe(&out));

    let summary = node.stop().await;
    assert_eq!(summary.associations, 2, "{summary:?}");
    assert_eq!(summary.associations_rejected, 0, "{summary:?}");
    assert_eq!(summary.instances_stored, files.len() as u64);
    assert_eq!(node.counts().instances, files.len() as u64);
    for f in &files {
        let uid = fixtures::sop_instance_uid(f);
        let record = node.spool.instance(&uid).unwrap().expect("stored");
        assert!(record.path.is_file());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_port_refuses_untrusted_expired_anonymous_and_plain_clients() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 2, 32, 32, 42);
    let audit_file = dir.path().join("audit.jsonl");
    let mut node = start_tls_node(|c| {
        c.audit.enabled = true;
        c.audit.file = Some(audit_file.clone());
    })
    .await;

    let untrusted = vec![
        "+tls".to_string(),
        cert("untrusted.key").display().to_string(),
        cert("untrusted.pem").display().to_string(),
        "+cf".into(),
        cert("ca.pem").display().to_string(),
    ];
    let anonymous = vec![
        "+tla".to_string(),
        "+cf".into(),
        cert("ca.pem").display().to_string(),
    ];
    let cases: [(&str, Vec<String>); 4] = [
        ("untrusted CA", untrusted),
        ("expired", tls_args("expired")),
        ("no certificate", anonymous),
        ("plain TCP", Vec::new()),
    ];
    for (what, args) in &cases {
        let options: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = storescu(node.port(), TEST_SCU_AE, &options, &files).await;
        assert!(
            !out.status.success(),
            "storescu ({what}) must be refused: {}",
            describe(&out)
        );
    }
    // The trusted peer still gets through afterwards.
    let out = echoscu_tls(node.port(), &tls_args("peer")).await;
    assert!(out.status.success(), "echoscu +tls: {}", describe(&out));

    let summary = node.stop().await;
    assert_eq!(
        node.counts().instances,
        0,
        "nothing stored from refused peers"
    );
    assert_eq!(summary.instances_stored, 0);
    assert_eq!(
        summary.associations, 1,
        "only the trusted echo: {summary:?}"
    );
    assert_eq!(summary.associations_rejected, 4, "{summary:?}");

    // Each refusal is a Security Alert (Node Authentication) naming the TLS failure; the
    // trusted peer's association is audited as accepted over TLS.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (alerts, accepted) = loop {
        let text = std::fs::read_to_string(&audit_file).unwrap_or_default();
        let alerts = text
            .lines()
            .filter(|l| {
                l.contains("110113") && l.contains("110126") && l.contains("TLS handshake failed")
            })
            .count();
        let accepted = text
            .lines()
            .filter(|l| l.contains("110114") && l.contains("accepted over TLS"))
            .count();
        if (alerts, accepted) == (4, 1) || std::time::Instant::now() > deadline {
            break (alerts, accepted);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((alerts, accepted), (4, 1), "audit trail of the TLS port");
}

fn scu_opts(client: Option<&str>, ca: Option<&str>) -> ScuOptions {
    let mut tls = client_config(client);
    if let Some(ca) = ca {
        tls.ca = cert(ca);
    }
    let mut opts = ScuOptions::new(AeTitle::parse("SEGNODE").unwrap());
    opts.connect_timeout = Duration::from_secs(20);
    opts.tls = Some(tls.load().expect("example TLS files load"));
    opts
}

fn storescp_tls() -> Storescp {
    let args = tls_args("peer");
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    Storescp::start("STORESCP", &extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn scu_stores_at_storescp_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 3, 32, 32, 43);
    let scp = storescp_tls();

    let report = scu::send_files(&scp.peer(), &scu_opts(Some("segnode"), None), &files)
        .await
        .expect("send over TLS");
    assert_eq!(report.sent, files.len(), "{report:?}");
    assert!(report.all_sent(), "{report:?}");
    let mut received: Vec<String> = scp
        .files()
        .iter()
        .map(|f| fixtures::sop_instance_uid(f))
        .collect();
    let mut sent: Vec<String> = files
        .iter()
        .map(|f| fixtures::sop_instance_uid(f))
        .collect();
    received.sort();
    sent.sort();
    assert_eq!(received, sent, "storescp wrote exactly what was sent");

    // storescp requires a client certificate (-rc, DCMTK's default).
    let err = scu::echo(&scp.peer(), &scu_opts(None, None))
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(err, ScuError::Tls { .. } | ScuError::Association { .. }),
        "{err}"
    );
    // A CA that did not sign storescp's certificate.
    let err = scu::echo(
        &scp.peer(),
        &scu_opts(Some("segnode"), Some("untrusted-ca.pem")),
    )
    .await
    .expect_err("untrusted server");
    assert!(matches!(err, ScuError::Tls { .. }), "{err}");
    assert_eq!(scp.files().len(), files.len(), "nothing more arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn segnode_echo_and_send_commands_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 2, 32, 32, 44);
    let scp = storescp_tls();
    let peer = scp.peer().to_string();
    let tls: Vec<String> = vec![
        "--tls-ca".into(),
        cert("ca.pem").display().to_string(),
        "--tls-certificate".into(),
        cert("segnode.pem").display().to_string(),
        "--tls-key".into(),
        cert("segnode.key").display().to_string(),
    ];
    let bin = env!("CARGO_BIN_EXE_segnode");
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(bin)
            .args(&args)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    };
    let mut echo = vec!["echo".to_string(), peer.clone()];
    echo.extend(tls.clone());
    let out = run(echo).await;
    assert!(
        out.status.success(),
        "segnode echo --tls-*: {}",
        describe(&out)
    );

    let mut send = vec![
        "send".to_string(),
        peer.clone(),
        dir.path().display().to_string(),
    ];
    send.extend(tls.clone());
    let out = run(send).await;
    assert!(
        out.status.success(),
        "segnode send --tls-*: {}",
        describe(&out)
    );
    assert_eq!(scp.files().len(), files.len());

    // Without TLS flags the TLS port does not answer DICOM.
    let out = run(vec!["echo".into(), peer, "--timeout".into(), "10".into()]).await;
    assert!(
        !out.status.success(),
        "plain echo to a TLS port: {}",
        describe(&out)
    );
}

fn config_with(extra: &str) -> Result<Config, String> {
    let text = format!("[node]\nae_title='A'\nport=104\ndata_dir='d'\n{extra}");
    Config::from_toml(&text, "x.toml", None).map_err(|e| e.to_string())
}

#[test]
fn tls_settings_are_checked_at_load() {
    let c = |n: &str| cert(n).display().to_string();
    let good = format!(
        "[tls]\ncertificate='{}'\nprivate_key='{}'\nca='{}'\n",
        c("segnode.pem"),
        c("segnode.key"),
        c("ca.pem")
    );
    let cfg = config_with(&good).expect("valid [tls]");
    let tls = cfg.tls.unwrap();
    assert_eq!(tls.port, 2762);
    assert!(tls.require_client_certificate && !tls.keep_plain_port);

    let missing = good.replace(&c("segnode.key"), "/nonexistent/segnode.key");
    let err = config_with(&missing).unwrap_err();
    assert!(
        err.contains("tls.private_key") && err.contains("/nonexistent/segnode.key"),
        "{err}"
    );

    let mismatched = good.replace(&c("segnode.key"), &c("peer.key"));
    let err = config_with(&mismatched).unwrap_err();
    assert!(
        err.contains("tls.private_key") && err.contains("does not go with"),
        "{err}"
    );

    let no_ca = format!(
        "[tls]\ncertificate='{}'\nprivate_key='{}'\n",
        c("segnode.pem"),
        c("segnode.key")
    );
    let err = config_with(&no_ca).unwrap_err();
    assert!(
        err.contains("tls.ca") && err.contains("require_client_certificate"),
        "{err}"
    );
    config_with(&format!("{no_ca}require_client_certificate=false\n")).expect("server-only TLS");

    let not_pem = good.replace(&c("ca.pem"), &c("segnode.key"));
    let err = config_with(&not_pem).unwrap_err();
    assert!(err.contains("tls.ca"), "{err}");

    let unknown = format!("{good}verify='yes'\n");
    let err = config_with(&unknown).unwrap_err();
    assert!(err.contains("verify"), "{err}");

    let dest = format!(
        "[[destinations]]\nname='pacs'\nae_title='PACS'\nhost='127.0.0.1'\nport=2762\ntls={{ ca='{}', certificate='{}' }}\n",
        c("ca.pem"),
        c("segnode.pem")
    );
    let err = config_with(&dest).unwrap_err();
    assert!(err.contains("destinations[0].tls.private_key"), "{err}");
    let _: PathBuf = cert("ca.pem");
}
