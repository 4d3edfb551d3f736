//! The audit trail against a real rsyslog. A node with `[audit]` sending RFC 5424 over TCP
//! (octet counting) stores a study from `storescu` and refuses an unknown calling AE: the
//! collector receives Application Start and Stop, the accepted association, one DICOM
//! Instances Transferred for the study (study UID, patient ID, the sender's AE title and
//! IP address, the instance count) and a Security Alert naming the refused AE; every
//! message is a DICOM AuditMessage with the schema's required elements
//! (tests/helpers/check_audit_xml.py), and the JSON-lines file holds the same messages.
//! Over UDP an operator action arrives too. With the collector down, recording never
//! waits and every lost message is counted.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::rsyslog::Rsyslog;
use common::{NODE_AE, TEST_SCU_AE, describe, echoscu, fixtures, storescu, test_config};
use dicom_dictionary_std::tags;
use segnode::ae::AeTitle;
use segnode::audit::{
    Action, Audit, AuditConfig, Node, OperatorAction, Outcome, StudyRef, SyslogConfig,
    SyslogTransport,
};
use segnode::config::AllowedPeer;

fn syslog_to(port: u16, transport: SyslogTransport) -> SyslogConfig {
    SyslogConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        transport,
        tls: None,
    }
}

/// Every message is a well-formed AuditMessage with the schema's required parts.
fn check_xml(lines: &[String]) {
    let xml: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.find("<?xml").map(|i| &l[i..]))
        .collect();
    assert_eq!(xml.len(), lines.len(), "every line holds one XML message");
    let mut child = std::process::Command::new(common::python::python())
        .arg(common::python::helper("check_audit_xml.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "audit XML check: {}", describe(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_audits_to_rsyslog_over_tcp() {
    let rsyslog = Rsyslog::start();
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(&dir.path().join("study"), 5, 32, 32, 51);
    let study_uid = fixtures::attribute(&files[0], tags::STUDY_INSTANCE_UID);
    let patient_id = fixtures::attribute(&files[0], tags::PATIENT_ID);
    assert!(!study_uid.is_empty() && !patient_id.is_empty());

    let jsonl = dir.path().join("audit.jsonl");
    let mut config = test_config(&dir.path().join("data"));
    config.access.allow = vec![AllowedPeer {
        ae_title: AeTitle::parse(TEST_SCU_AE).unwrap(),
        host: None,
    }];
    config.audit = AuditConfig {
        enabled: true,
        syslog: Some(syslog_to(rsyslog.port, SyslogTransport::Tcp)),
        file: Some(jsonl.clone()),
        ..AuditConfig::default()
    };
    common::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(segnode::serve::run_on(listener, config, async move {
        let _ = stop_rx.await;
    }));

    let out = storescu(port, TEST_SCU_AE, &[], &files).await;
    assert!(out.status.success(), "storescu: {}", describe(&out));
    let out = echoscu(port, "STRANGER", NODE_AE).await;
    assert!(
        !out.status.success(),
        "an unknown AE is refused: {}",
        describe(&out)
    );
    let _ = stop_tx.send(());
    let summary = tokio::time::timeout(Duration::from_secs(60), node)
        .await
        .expect("node stops")
        .unwrap()
        .expect("node ran");
    assert_eq!(summary.scp.instances_stored, files.len() as u64);

    let has = |parts: Vec<String>| move |l: &str| parts.iter().all(|p| l.contains(p.as_str()));
    let start = has(vec![
        "110100".into(),
        "110120".into(),
        format!("UserID=\"{NODE_AE}\""),
    ]);
    let stop = has(vec!["110100".into(), "110121".into()]);
    let accepted = has(vec![
        "110114".into(),
        "110122".into(),
        format!("UserID=\"{TEST_SCU_AE}\""),
        "NetworkAccessPointID=\"127.0.0.1\"".into(),
    ]);
    let transferred = has(vec![
        "110104".into(),
        "EventActionCode=\"C\"".into(),
        format!("ParticipantObjectID=\"{study_uid}\""),
        format!("ParticipantObjectID=\"{patient_id}\""),
        format!(
            "UserID=\"{TEST_SCU_AE}\" UserIsRequestor=\"true\" NetworkAccessPointID=\"127.0.0.1\""
        ),
        format!("NumberOfInstances=\"{}\"", files.len()),
        "110153".into(),
        "110152".into(),
    ]);
    let alert = has(vec![
        "110113".into(),
        "110126".into(),
        "UserID=\"STRANGER\"".into(),
        "NetworkAccessPointID=\"127.0.0.1\"".into(),
        "EventOutcomeIndicator=\"4\"".into(),
    ]);
    let lines = rsyslog
        .wait_for(
            &[&start, &stop, &accepted, &transferred, &alert],
            Duration::from_secs(15),
        )
        .await;
    for l in &lines {
        assert!(
            l.starts_with("IHE+RFC-3881 segnode "),
            "RFC 5424 MSGID and APP-NAME as sent: {l}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("110104")).count(),
        1,
        "one Instances Transferred per study and association"
    );
    check_xml(&lines);

    let json: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(
        json.len(),
        lines.len(),
        "the file holds what the collector got"
    );
    assert!(json.iter().all(|v| {
        v["xml"]
            .as_str()
            .is_some_and(|x| x.contains("<AuditMessage>"))
    }));
    assert!(
        json.iter()
            .any(|v| v["record"]["event_id"]["code"] == "110104")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_actions_reach_rsyslog_over_udp() {
    let rsyslog = Rsyslog::start();
    let config = AuditConfig {
        enabled: true,
        syslog: Some(syslog_to(rsyslog.port, SyslogTransport::Udp)),
        ..AuditConfig::default()
    };
    let audit = Audit::start(&config, "SEGNODE").await.unwrap();
    let node = Node {
        ae_title: "SEGNODE".into(),
        ip: None,
    };
    audit.operator_action(
        &OperatorAction {
            user: "alice".into(),
            ip: Some("10.1.2.3".parse().unwrap()),
            action: Action::Delete,
            what: "delete study".into(),
            study: Some(StudyRef {
                study_uid: "1.2.3.4".into(),
                patient_id: "PAT-9".into(),
                patient_name: None,
                sop_classes: Vec::new(),
            }),
            outcome: Outcome::Success,
        },
        &node,
    );
    audit.flush(Duration::from_secs(5)).await;
    let deleted = |l: &str| {
        l.contains("110105")
            && l.contains("UserID=\"alice\"")
            && l.contains("10.1.2.3")
            && l.contains("ParticipantObjectID=\"1.2.3.4\"")
            && l.contains("EventActionCode=\"D\"")
    };
    let lines = rsyslog.wait_for(&[&deleted], Duration::from_secs(10)).await;
    check_xml(&lines);
    assert_eq!(audit.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_costs_nothing_and_drops_are_counted() {
    let port = common::free_port();
    let config = AuditConfig {
        enabled: true,
        queue_capacity: 8,
        syslog: Some(syslog_to(port, SyslogTransport::Tcp)),
        ..AuditConfig::default()
    };
    let audit = Audit::start(&config, "SEGNODE").await.unwrap();
    let started = Instant::now();
    for _ in 0..1000 {
        audit.record(segnode::audit::events::application_activity(
            "SEGNODE", true,
        ));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "recording waited: {:?}",
        started.elapsed()
    );
    audit.flush(Duration::from_secs(10)).await;
    assert_eq!(audit.dropped(), 1000, "every message was lost, and counted");
}
