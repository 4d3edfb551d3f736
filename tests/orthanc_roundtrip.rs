//! Orthanc → segnode → Orthanc with a real Orthanc 1.10 started from `conf/orthanc/`: a
//! synthetic DCE study is uploaded to Orthanc over REST, the Lua script routes it to
//! segnode when it becomes stable, segnode makes the SEG and (with the outbox) C-STOREs it
//! back into the same Orthanc study. Asserted through Orthanc's REST API: one SEG series,
//! referencing the source series, each frame on its source slice; and no routing loop
//! (Orthanc does not send the study to segnode again once the SEG has arrived). The same
//! for a fetal head ultrasound image (JPEG baseline), which the Lua routes as well and the
//! second pipeline segments.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::node::{BlockingNode, READINESS_ASSOCIATIONS, results_of, write_pipeline};
use common::orthanc::Orthanc;
use segnode::ae::AeTitle;
use segnode::config::{AllowedPeer, Config};
use segnode::serve::NodeSummary;
use segnode::synth::{DceParams, Orientation, SynthStudy, write_dce_study};

const NODE_AE: &str = "SEGNODE";
/// Every wait is bounded by this.
const LIMIT: Duration = Duration::from_secs(90);

/// The node config ([`common::node::node_config`] under `dir`): Orthanc allowed to store,
/// the shipped DCE and fetal pipelines; with `orthanc` = Some(DICOM port), Orthanc (AE
/// ORTHANC) as the pipelines' destination through the outbox.
fn node_config(dir: &Path, orthanc: Option<u16>) -> Config {
    node_config_with(dir, orthanc.map(Delivery::Dimse), Companions::None)
}

/// How the node reaches Orthanc.
enum Delivery {
    /// C-STORE to this DICOM port.
    Dimse(u16),
    /// STOW-RS to this DICOMweb base URL.
    Stow(String),
}

/// What the DCE pipeline sends besides the SEG.
#[derive(PartialEq)]
enum Companions {
    None,
    /// The measurement report (as shipped) and the overlay series.
    ReportAndOverlay,
}

fn node_config_with(dir: &Path, orthanc: Option<Delivery>, companions: Companions) -> Config {
    let mut config = common::node::node_config(dir);
    let destinations = if orthanc.is_some() {
        "destinations = [\"orthanc\"]"
    } else {
        "destinations = []"
    };
    let companions = companions == Companions::ReportAndOverlay;
    let dce_output = if companions {
        format!("{destinations}\noverlay = true")
    } else {
        destinations.to_string()
    };
    let min_slices = format!("min_slices = {}", common::dce::SLICES);
    write_pipeline(
        dir,
        "dce_breast",
        companions,
        &[
            ("min_slices = 96", &min_slices),
            ("destinations = []", &dce_output),
        ],
    );
    write_pipeline(
        dir,
        "fetal_head_us",
        false,
        &[("destinations = []", destinations)],
    );
    config.pipelines.enabled.push("fetal_head_us".into());
    config.access.allow.push(AllowedPeer {
        ae_title: AeTitle::parse("ORTHANC").unwrap(),
        host: Some([127, 0, 0, 1].into()),
    });
    match orthanc {
        Some(Delivery::Dimse(port)) => {
            let mut orthanc = common::node::dimse_destination("orthanc", "ORTHANC", port);
            orthanc.calling_ae = Some(AeTitle::parse(NODE_AE).unwrap());
            config.destinations.push(orthanc);
        }
        Some(Delivery::Stow(url)) => config.destinations.push(common::node::destination(&format!(
            "name = 'orthanc'\nkind = 'stow'\nurl = '{url}'\n"
        ))),
        None => {}
    }
    config.outbox.initial_delay_seconds = 1;
    config.outbox.max_delay_seconds = 5;
    config.outbox.max_attempts = 10;
    config
}

fn small_study(dir: &Path) -> SynthStudy {
    let params = DceParams {
        orientation: Orientation::Oblique,
        slices: 24,
        size: 96,
        seed: 41,
        with_localizer: true,
        ..Default::default()
    };
    write_dce_study(dir, &params).unwrap()
}

/// Upload every file of the study; returns Orthanc's study ID.
fn upload_study(orthanc: &Orthanc, study: &SynthStudy) -> String {
    let mut study_id = None;
    for file in &study.files {
        let answer = orthanc.upload(file);
        assert_eq!(answer["Status"], "Success", "{}: {answer}", file.display());
        study_id = Some(answer["ParentStudy"].as_str().unwrap().to_string());
    }
    study_id.expect("the study has files")
}

/// Wait until the routing job Orthanc's Lua created has delivered the study to segnode.
fn wait_routed(orthanc: &Orthanc) -> serde_json::Value {
    orthanc.wait_for(
        "the Lua routing job (DicomModalityStore to segnode) to succeed",
        LIMIT,
        || {
            let jobs = orthanc.store_jobs();
            if let Some(failed) = jobs.iter().find(|j| j["State"] == "Failure") {
                panic!(
                    "the routing job failed: {failed}\nOrthanc log:\n{}",
                    orthanc.log_tail(40)
                );
            }
            jobs.into_iter().find(|j| j["State"] == "Success")
        },
    )
}

fn parse_ipp(s: &str) -> [f64; 3] {
    let v: Vec<f64> = s
        .split('\\')
        .map(|x| x.trim().parse().unwrap_or_else(|_| panic!("IPP {s:?}")))
        .collect();
    assert_eq!(v.len(), 3, "IPP {s:?}");
    [v[0], v[1], v[2]]
}

/// The SEG is in the study exactly once, references the four DCE series and each frame
/// lies on its source slice. Returns the SEG's SOP Instance UID.
fn assert_seg_in_orthanc(orthanc: &Orthanc, study_id: &str, study: &SynthStudy) -> String {
    let segs = orthanc.series_with_modality(study_id, "SEG");
    assert_eq!(
        segs.len(),
        1,
        "exactly one SEG series in the study: {segs:#?}"
    );
    let instances = segs[0]["Instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "one SEG instance: {instances:?}");
    let seg_id = instances[0].as_str().unwrap();
    let tags = orthanc.get(&format!("/instances/{seg_id}/tags?simplify"));
    assert_eq!(tags["SOPClassUID"], "1.2.840.10008.5.1.4.1.1.66.4");
    assert_eq!(tags["StudyInstanceUID"], study.study_uid.as_str());

    // ReferencedSeriesSequence: the reference phase only; the other three phases as
    // related series (never the localizer).
    let uids = |key: &str| -> Vec<String> {
        tags[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {tags}"))
            .iter()
            .map(|r| r["SeriesInstanceUID"].as_str().unwrap().to_string())
            .collect()
    };
    let phases = study.dce_phases();
    let phases: Vec<&str> = phases.iter().map(|s| s.series_uid.as_str()).collect();
    assert_eq!(
        uids("ReferencedSeriesSequence"),
        [phases[0]],
        "the reference phase"
    );
    assert_eq!(
        uids("RelatedSeriesSequence"),
        phases[1..],
        "the other phases"
    );

    // Source slices as Orthanc stores them: SOP Instance UID → ImagePositionPatient.
    let mut ipp_of: HashMap<String, [f64; 3]> = HashMap::new();
    for series in orthanc.series_with_modality(study_id, "MR") {
        let id = series["ID"].as_str().unwrap();
        for inst in orthanc
            .get(&format!("/series/{id}/instances"))
            .as_array()
            .unwrap()
        {
            let sop = inst["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap();
            let ipp = match inst["MainDicomTags"]["ImagePositionPatient"].as_str() {
                Some(s) => s.to_string(),
                None => {
                    let iid = inst["ID"].as_str().unwrap();
                    orthanc.get(&format!("/instances/{iid}/simplified-tags"))
                        ["ImagePositionPatient"]
                        .as_str()
                        .unwrap()
                        .to_string()
                }
            };
            ipp_of.insert(sop.to_string(), parse_ipp(&ipp));
        }
    }

    let frames = tags["PerFrameFunctionalGroupsSequence"]
        .as_array()
        .expect("PerFrameFunctionalGroupsSequence");
    assert_eq!(frames.len(), 24, "one frame per source slice");
    let mut positions = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let ipp = parse_ipp(
            frame["PlanePositionSequence"][0]["ImagePositionPatient"]
                .as_str()
                .unwrap_or_else(|| panic!("frame {i}: no PlanePositionSequence IPP")),
        );
        let source = frame["DerivationImageSequence"][0]["SourceImageSequence"][0]
            ["ReferencedSOPInstanceUID"]
            .as_str()
            .unwrap_or_else(|| panic!("frame {i}: no source image"));
        let source_ipp = ipp_of
            .get(source)
            .unwrap_or_else(|| panic!("frame {i}: source {source} is not in the Orthanc study"));
        for k in 0..3 {
            assert!(
                (ipp[k] - source_ipp[k]).abs() < 1e-4,
                "frame {i}: IPP {ipp:?} is not on its source slice {source} at {source_ipp:?}"
            );
        }
        positions.push(ipp);
    }
    positions.sort_by(|a, b| a.partial_cmp(b).unwrap());
    positions.dedup();
    assert_eq!(positions.len(), 24, "the frames cover 24 distinct slices");
    tags["SOPInstanceUID"].as_str().unwrap().to_string()
}

/// After the SEG arrived: the study becomes stable again; the Lua must decline to route it
/// (its log line says so) and, past another StableAge, still only one routing job exists
/// and one SEG series.
fn assert_no_routing_loop(orthanc: &Orthanc, study_id: &str) {
    orthanc.wait_for(
        "the Lua script to decline the re-stabilised study (\"not sent again\")",
        LIMIT,
        || {
            let jobs = orthanc.store_jobs().len();
            assert!(
                jobs <= 1,
                "routing loop: Orthanc sent the study to segnode {jobs} times\nLua:\n{}",
                orthanc.lua_lines().join("\n")
            );
            orthanc
                .lua_lines()
                .iter()
                .any(|l| l.contains("not sent again"))
                .then_some(())
        },
    );
    // Another StableAge (5 s in the template) and some: nothing else may happen.
    std::thread::sleep(Duration::from_secs(8));
    let jobs = orthanc.store_jobs();
    assert_eq!(
        jobs.len(),
        1,
        "Orthanc routed the study to segnode once: {jobs:#?}\nLua:\n{}",
        orthanc.lua_lines().join("\n")
    );
    assert_eq!(
        orthanc.series_with_modality(study_id, "SEG").len(),
        1,
        "still one SEG series"
    );
}

fn assert_node_received_once(summary: &NodeSummary, study: &SynthStudy) {
    assert!(
        summary.pipelines.failed.is_empty(),
        "failed jobs: {:?}",
        summary.pipelines.failed
    );
    assert_eq!(summary.pipelines.completed.len(), 1, "one SEG made");
    assert_eq!(
        summary.scp.instances_stored,
        study.files.len() as u64,
        "segnode received the study's instances once (Orthanc sent no SEG and nothing twice)"
    );
    assert_eq!(
        summary.scp.associations,
        1 + READINESS_ASSOCIATIONS,
        "one association from Orthanc (besides the test harness's readiness C-ECHO)"
    );
}

/// Orthanc routes the stable study to segnode (Lua) and segnode writes the SEG to its
/// results folder; the SEG is then put into Orthanc over REST (standing in for segnode's
/// outbox) to show the Lua does not route the study back.
#[test]
fn orthanc_routes_a_stable_study_to_segnode_and_the_seg_coming_back_does_not_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"));
    let config = node_config(&tmp.path().join("node"), None);
    let node = BlockingNode::start(config);
    let orthanc = Orthanc::start(&tmp.path().join("orthanc"), node.port());

    let study_id = upload_study(&orthanc, &study);
    wait_routed(&orthanc);
    let seg = node.wait_for_results(&study.study_uid, 1, LIMIT).remove(0);
    assert_eq!(node.node().results(&study.study_uid).len(), 1);
    let score = segnode::eval::evaluate_file(&seg, &study.truth_path, 1).unwrap();
    assert!(score.dice >= 0.9, "Dice {:.4}", score.dice);

    // The SEG arrives in the study (as segnode's outbox delivers it).
    let answer = orthanc.upload(&seg);
    assert_eq!(answer["ParentStudy"], study_id.as_str(), "same study");
    let sop = assert_seg_in_orthanc(&orthanc, &study_id, &study);
    assert_eq!(
        sop,
        segnode::pipeline::seg::read_seg(&seg)
            .unwrap()
            .sop_instance_uid
    );
    assert_no_routing_loop(&orthanc, &study_id);

    let summary = node.stop();
    assert_node_received_once(&summary, &study);
}

/// The whole loop: Lua routes, segnode's outbox C-STOREs the SEG into the same study.
#[test]
fn orthanc_to_segnode_and_back_the_seg_lands_once_in_the_same_study_without_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"));
    let orthanc_dir = tmp.path().join("orthanc");
    // The node needs Orthanc's DICOM port and Orthanc needs the node's port: start the node
    // on a config naming a port chosen now, then Orthanc on that DICOM port.
    let dicom_port = common::free_port();
    let config = node_config(&tmp.path().join("node"), Some(dicom_port));
    let node = BlockingNode::start(config);
    let orthanc = Orthanc::start_with_dicom_port(&orthanc_dir, node.port(), dicom_port);

    let study_id = upload_study(&orthanc, &study);
    wait_routed(&orthanc);
    let seg = node.wait_for_results(&study.study_uid, 1, LIMIT).remove(0);
    orthanc.wait_for("the SEG delivered into the Orthanc study", LIMIT, || {
        (!orthanc.series_with_modality(&study_id, "SEG").is_empty()).then_some(())
    });
    let sop = assert_seg_in_orthanc(&orthanc, &study_id, &study);
    assert_eq!(
        sop,
        segnode::pipeline::seg::read_seg(&seg)
            .unwrap()
            .sop_instance_uid,
        "Orthanc holds the SEG segnode made"
    );
    assert_no_routing_loop(&orthanc, &study_id);

    let summary = node.stop();
    assert_node_received_once(&summary, &study);
}

/// A fetal head ultrasound image (JPEG baseline, as the machine stores it) uploaded to
/// Orthanc is routed to segnode, segmented by the ultrasound pipeline, and its SEG lands in
/// the same Orthanc study, once, matching the phantom truth.
#[test]
fn an_ultrasound_image_in_orthanc_gets_its_seg_back_in_the_same_study() {
    let tmp = tempfile::tempdir().unwrap();
    let image = common::fetal::us_still(&tmp.path().join("us"), 43);
    let dicom_port = common::free_port();
    let config = node_config(&tmp.path().join("node"), Some(dicom_port));
    let node = BlockingNode::start(config);
    let orthanc =
        Orthanc::start_with_dicom_port(&tmp.path().join("orthanc"), node.port(), dicom_port);

    let answer = orthanc.upload(&image.path);
    assert_eq!(answer["Status"], "Success", "{answer}");
    let study_id = answer["ParentStudy"].as_str().unwrap().to_string();
    wait_routed(&orthanc);
    let segs = orthanc.wait_for(
        "the ultrasound SEG delivered into the Orthanc study",
        LIMIT,
        || {
            let segs = orthanc.series_with_modality(&study_id, "SEG");
            (!segs.is_empty()).then_some(segs)
        },
    );
    assert_eq!(segs.len(), 1, "one SEG series: {segs:#?}");
    let seg_id = segs[0]["Instances"][0].as_str().unwrap();
    let seg_path = tmp.path().join("from-orthanc.dcm");
    std::fs::write(
        &seg_path,
        orthanc.get_bytes(&format!("/instances/{seg_id}/file")),
    )
    .unwrap();
    let seg = segnode::pipeline::seg::read_seg(&seg_path).unwrap();
    assert_eq!(seg.study_instance_uid, image.study_uid);
    assert_eq!(
        seg.frames[0].referenced_sop_instance_uid(),
        Some(image.sop_instance_uid.as_str())
    );
    let scores = segnode::eval::evaluate_files(&seg_path, &image.truth_path, None).unwrap();
    eprint!("{}", segnode::eval::table(&scores));
    assert_eq!(scores.len(), 3);
    assert!(scores.iter().all(|s| s.dice >= 0.9), "{scores:?}");
    assert_no_routing_loop(&orthanc, &study_id);

    let summary = node.stop();
    assert!(
        summary.pipelines.failed.is_empty(),
        "{:?}",
        summary.pipelines.failed
    );
    assert_eq!(summary.pipelines.completed.len(), 1);
    assert_eq!(summary.scp.instances_stored, 1, "the image, once");
}

/// What Orthanc's DICOMweb plugin needs to run in the test's Orthanc.
fn dicomweb_plugin() -> serde_json::Value {
    let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
    assert!(
        plugin.is_file(),
        "{} is missing: run `make setup` (it installs orthanc-dicomweb)",
        plugin.display()
    );
    serde_json::json!({
        "Plugins": [plugin.display().to_string()],
        "DicomWeb": { "Enable": true, "Root": "/dicom-web/" }
    })
}

/// Every NumericValue anywhere in Orthanc's simplified tags of an instance.
fn numeric_values(tags: &serde_json::Value, out: &mut Vec<f64>) {
    match tags {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "NumericValue" {
                    if let Some(v) = value.as_str().and_then(|v| v.trim().parse().ok()) {
                        out.push(v);
                    }
                } else {
                    numeric_values(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| numeric_values(i, out)),
        _ => {}
    }
}

/// The routed study comes back as SEG + SR + overlay in the same Orthanc study, each
/// instance once; the SR's measurements are those segnode wrote; a restart sends nothing
/// again; and the overlay (Modality OT) does not route the study back.
fn seg_report_and_overlay_come_back_once(via_stow: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"));
    let dicom_port = common::free_port();
    let http_port = common::free_port();
    let delivery = if via_stow {
        Delivery::Stow(format!("http://127.0.0.1:{http_port}/dicom-web"))
    } else {
        Delivery::Dimse(dicom_port)
    };
    let config = node_config_with(
        &tmp.path().join("node"),
        Some(delivery),
        Companions::ReportAndOverlay,
    );
    let results = config.results_dir();
    let node = BlockingNode::start(config.clone());
    let orthanc = Orthanc::start_on_ports(
        &tmp.path().join("orthanc"),
        node.port(),
        dicom_port,
        http_port,
        &dicomweb_plugin(),
    );

    let study_id = upload_study(&orthanc, &study);
    wait_routed(&orthanc);
    let overlay_dir = orthanc.wait_for("the overlay series in the results folder", LIMIT, || {
        std::fs::read_dir(results.join(&study.study_uid))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir() && p.to_string_lossy().ends_with("-overlay"))
    });
    let overlays = orthanc.wait_for("every overlay image delivered", LIMIT, || {
        let ot = orthanc.series_with_modality(&study_id, "OT");
        let n = ot.first()?["Instances"].as_array()?.len();
        (n == study.dce_phases()[0].files.len()).then_some(ot)
    });
    assert_eq!(overlays.len(), 1, "one overlay series: {overlays:#?}");
    let srs = orthanc.wait_for("the SR delivered", LIMIT, || {
        let srs = orthanc.series_with_modality(&study_id, "SR");
        (!srs.is_empty()).then_some(srs)
    });
    assert_eq!(srs.len(), 1, "one SR series: {srs:#?}");
    let sr_ids = srs[0]["Instances"].as_array().unwrap();
    assert_eq!(sr_ids.len(), 1, "one SR instance");
    assert_seg_in_orthanc(&orthanc, &study_id, &study);

    // The SR in Orthanc carries the values segnode measured.
    let local_sr = results_of(&results, &study.study_uid)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-report.dcm"))
        .expect("the SR beside the SEG");
    let groups = segnode::pipeline::report::read::read_report(&local_sr).unwrap();
    let volume = groups[0].value("118565006").expect("a volume in the SR");
    assert!(
        volume > 0.0,
        "the phantom's lesion has a volume: {groups:?}"
    );
    let tags = orthanc.get(&format!(
        "/instances/{}/tags?simplify",
        sr_ids[0].as_str().unwrap()
    ));
    let mut in_orthanc = Vec::new();
    numeric_values(&tags, &mut in_orthanc);
    for group in &groups {
        for (code, meaning, value, unit) in &group.values {
            assert!(
                in_orthanc
                    .iter()
                    .any(|v| (v - value).abs() <= 1e-6 * value.abs().max(1.0)),
                "{meaning} ({code}) = {value} {unit} is not in Orthanc's SR tags: {in_orthanc:?}"
            );
        }
    }
    assert_no_routing_loop(&orthanc, &study_id);
    let overlay_files = std::fs::read_dir(&overlay_dir).unwrap().count();
    assert_eq!(overlay_files, study.dce_phases()[0].files.len());

    // Everything is delivered once: a restart on the same spool sends nothing again.
    let first = node.stop();
    assert_eq!(first.pipelines.completed.len(), 1, "one job");
    let expected = 2 + overlay_files;
    assert_eq!(
        first.outbox.delivered, expected,
        "SEG + SR + overlay, once each"
    );
    let again = BlockingNode::start(config);
    std::thread::sleep(Duration::from_secs(3));
    let second = again.stop();
    assert_eq!(
        (
            second.outbox.delivered,
            second.outbox.retried,
            second.pipelines.completed.len()
        ),
        (0, 0, 0),
        "nothing sent or made twice after a restart"
    );
    let instances = orthanc
        .get(&format!("/studies/{study_id}/instances"))
        .as_array()
        .unwrap()
        .len();
    let sources: usize = study.files.len();
    assert_eq!(
        instances,
        sources + expected,
        "every result once in the study"
    );
}

/// Through DIMSE (C-STORE from the outbox).
#[test]
fn orthanc_gets_seg_report_and_overlay_once_by_c_store() {
    seg_report_and_overlay_come_back_once(false);
}

/// Through DICOMweb (STOW-RS to Orthanc's plugin).
#[test]
fn orthanc_gets_seg_report_and_overlay_once_by_stow_rs() {
    seg_report_and_overlay_come_back_once(true);
}
