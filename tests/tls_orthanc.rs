//! DICOM TLS with Orthanc 1.10 (`DicomTlsEnabled`, the example certificates): Orthanc
//! C-STOREs a study to segnode's TLS port (its modality entry has `UseDicomTls`), and
//! segnode's SCU stores a series at Orthanc's TLS-only DICOM port; both arrive whole.

mod common;

use std::time::Duration;

use common::fixtures;
use common::orthanc::Orthanc;
use common::tls::{cert, client_config, start_tls_node};
use segnode::ae::AeTitle;
use segnode::scu::{self, ScuOptions};

fn tls_settings() -> serde_json::Value {
    let c = |n: &str| cert(n).display().to_string();
    serde_json::json!({
        "LuaScripts": [],
        "DicomTlsEnabled": true,
        "DicomTlsCertificate": c("peer.pem"),
        "DicomTlsPrivateKey": c("peer.key"),
        "DicomTlsTrustedCertificates": c("ca.pem"),
        "DicomTlsRemoteCertificateRequired": true,
        "DicomModalities": { "segnode": { "UseDicomTls": true } }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn orthanc_and_segnode_exchange_studies_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let to_segnode = fixtures::mr_series(&dir.path().join("a"), 4, 32, 32, 61);
    let to_orthanc = fixtures::mr_series(&dir.path().join("b"), 3, 32, 32, 62);
    let mut node = start_tls_node(|_| {}).await;
    let orthanc = tokio::task::block_in_place(|| {
        Orthanc::start_with(&dir.path().join("orthanc"), node.port(), &tls_settings())
    });

    // Orthanc as the sender.
    let ids: Vec<String> = to_segnode
        .iter()
        .map(|f| orthanc.upload(f)["ID"].as_str().unwrap().to_string())
        .collect();
    let body = serde_json::json!({ "Resources": ids, "Synchronous": true }).to_string();
    let answer = tokio::task::block_in_place(|| orthanc.post("/modalities/segnode/store", &body));
    assert_eq!(
        answer["InstancesCount"].as_u64(),
        Some(to_segnode.len() as u64),
        "Orthanc store job: {answer}\n{}",
        orthanc.log_tail(30)
    );
    node.wait_for_instances(to_segnode.len() as u64, Duration::from_secs(30))
        .await;
    for f in &to_segnode {
        let uid = fixtures::sop_instance_uid(f);
        assert!(node.spool.instance(&uid).unwrap().is_some(), "{uid} stored");
    }

    // Orthanc as the destination (TLS only on its DICOM port).
    let peer = format!("ORTHANC@127.0.0.1:{}", orthanc.dicom_port)
        .parse()
        .unwrap();
    let mut opts = ScuOptions::new(AeTitle::parse("SEGNODE").unwrap());
    opts.tls = Some(client_config(Some("segnode")).load().unwrap());
    let report = scu::send_files(&peer, &opts, &to_orthanc)
        .await
        .expect("send");
    assert!(
        report.all_sent() && report.sent == to_orthanc.len(),
        "{report:?}"
    );
    for f in &to_orthanc {
        let uid = fixtures::sop_instance_uid(f);
        let found = tokio::task::block_in_place(|| orthanc.post("/tools/lookup", &uid));
        assert!(
            found.as_array().is_some_and(|a| !a.is_empty()),
            "{uid} is in Orthanc: {found}"
        );
    }
    // Plain DICOM to Orthanc's TLS port fails.
    let plain = ScuOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        ..ScuOptions::new(AeTitle::parse("SEGNODE").unwrap())
    };
    assert!(scu::echo(&peer, &plain).await.is_err());
    node.stop().await;
}
