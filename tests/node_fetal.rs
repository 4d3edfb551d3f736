//! Ultrasound through the node, as a modality or the PACS would send it: fetal head images
//! C-STOREd to segnode (JPEG baseline and a cine, on one association, next to the DCE
//! pipeline) each come back as a SEG at the configured destination (DCMTK storescp),
//! referencing its image and matching the phantom truth.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_dictionary_std::tags;
use segnode::ae::{AeTitle, Peer};
use segnode::config::Config;
use segnode::synth::UsEncoding;

use common::node::{dimse_destination, spawn_node, write_pipeline};
use common::storescp::Storescp;

/// The calling AE title the images come from.
const MODALITY_AE: &str = "US_MODALITY";

/// Both shipped pipelines ([`common::node::node_config`]); the fetal one delivers to
/// storescp on `store_port`.
fn node_config(dir: &Path, store_port: u16) -> Config {
    let mut config = common::node::node_config(dir);
    write_pipeline(
        dir,
        "fetal_head_us",
        false,
        &[("destinations = []", "destinations = [\"store\"]")],
    );
    config.pipelines.enabled.push("fetal_head_us".into());
    config
        .destinations
        .push(dimse_destination("store", "STORE", store_port));
    config.outbox.initial_delay_seconds = 1;
    config.outbox.max_delay_seconds = 2;
    config
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Run a node on `config`, C-STORE `files` to it on one association (every one must be
/// acknowledged), wait (bounded) until the destination `scp` holds `expected` files, stop
/// the node: the files that arrived (they live as long as `scp`) and the node's summary.
async fn send_and_collect(
    config: Config,
    files: &[PathBuf],
    scp: &Storescp,
    expected: usize,
) -> (Vec<PathBuf>, segnode::serve::NodeSummary) {
    let node = spawn_node(config).await;
    node.send_as(MODALITY_AE, &node.ae_title, files).await;
    let what = format!("{expected} SEG(s) at the destination");
    let arrived = node
        .wait_for(&what, Duration::from_secs(120), || {
            let files = scp.files();
            (files.len() >= expected).then_some(files)
        })
        .await;
    (arrived, node.stop_within(Duration::from_secs(30)).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn ultrasound_images_sent_to_the_node_come_back_as_segs_at_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let still = common::fetal::us_still(&tmp.path().join("still"), 21);
    let cine = common::fetal::us_image(&tmp.path().join("cine"), 22, UsEncoding::JpegBaseline, 2);
    let scp = Storescp::start("STORE", &["+uf"]);
    let config = node_config(tmp.path(), scp.port);
    let files: Vec<PathBuf> = vec![still.path.clone(), cine.path.clone()];
    let (arrived, summary) = send_and_collect(config, &files, &scp, 2).await;
    assert!(
        summary.pipelines.failed.is_empty(),
        "{:?}",
        summary.pipelines.failed
    );
    assert_eq!(
        arrived.len(),
        2,
        "one SEG per image at the destination: {arrived:?}"
    );
    assert_eq!(summary.pipelines.completed.len(), 2);
    assert!(
        summary
            .pipelines
            .completed
            .iter()
            .all(|j| j.pipeline == "fetal_head_us"),
        "the DCE pipeline takes no ultrasound"
    );

    for path in &arrived {
        let obj = dicom_object::open_file(path).unwrap();
        assert_eq!(
            text(&obj, tags::SOP_CLASS_UID),
            segnode::uids::SEGMENTATION_STORAGE
        );
        let seg = segnode::pipeline::seg::read_seg(path).unwrap();
        let source = seg.frames[0]
            .referenced_sop_instance_uid()
            .unwrap()
            .to_string();
        let image = [&still, &cine]
            .into_iter()
            .find(|i| i.sop_instance_uid == source)
            .expect("the SEG references one of the images sent");
        assert_eq!(seg.study_instance_uid, image.study_uid);
        assert_eq!(seg.frames.len(), 3 * image.frames as usize);
        let scores = segnode::eval::evaluate_files(path, &image.truth_path, None).unwrap();
        eprint!("{}", segnode::eval::table(&scores));
        assert_eq!(scores.len(), 3);
        for s in scores {
            assert!(
                s.dice >= 0.9,
                "{}: {}: Dice {:.4}",
                image.sop_instance_uid,
                s.label,
                s.dice
            );
        }
    }
}

/// A burst of images against a worker queue of one: every image still gets its SEG (the
/// assembler holds decided jobs while the worker is busy, ingest does not wait for it).
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_images_each_gets_its_seg_with_a_job_queue_of_one() {
    const IMAGES: u64 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..IMAGES)
        .map(|seed| common::fetal::us_still(&tmp.path().join(format!("us{seed}")), 100 + seed).path)
        .collect();
    let scp = Storescp::start("STORE", &["+uf"]);
    let mut config = node_config(tmp.path(), scp.port);
    config.pipelines.job_queue_capacity = 1;
    let (arrived, summary) = send_and_collect(config, &files, &scp, IMAGES as usize).await;
    assert!(
        summary.pipelines.failed.is_empty(),
        "{:?}",
        summary.pipelines.failed
    );
    assert_eq!(
        summary.pipelines.completed.len() as u64,
        IMAGES,
        "one job per image"
    );
    assert_eq!(
        arrived.len() as u64,
        IMAGES,
        "one SEG per image at the destination"
    );
}

/// Events the SCP dropped (it gives up on an event after a stalled consumer) are made good
/// from the spool: an image stored by an SCP whose events never reach the pipelines, with
/// the drop counted, still gets its SEG.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_whose_ingest_event_was_dropped_is_read_back_from_the_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("spool");
    let image = common::fetal::us_still(&tmp.path().join("us"), 31);

    // The pipelines side on the node's data folder (no SCP feeds it).
    let config = node_config(tmp.path(), common::free_port());
    let spool = std::sync::Arc::new(segnode::spool::Spool::open(&data, &config.storage).unwrap());
    let pipelines = segnode::pipeline::load::PipelineSet::load_in_background(&config)
        .await
        .unwrap();
    let (sink, driver) = segnode::pipeline::driver::spawn(
        &config,
        spool.clone(),
        pipelines,
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );

    // Let the start-up read-back of the spool finish first (it would find the image too).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // An SCP on the same spool whose events go elsewhere: the image is stored, the
    // pipelines hear nothing of it; then the drop is counted, as the SCP does.
    let mut scp = common::TestNode::start_on(spool, common::test_config(&data)).await;
    let peer: Peer = format!("{}@127.0.0.1:{}", common::NODE_AE, scp.port())
        .parse()
        .unwrap();
    let opts = segnode::scu::ScuOptions::new(AeTitle::parse(MODALITY_AE).unwrap());
    let report = segnode::scu::send_files(&peer, &opts, std::slice::from_ref(&image.path))
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let results = config.results_dir().join(&image.study_uid);
    let seg_in_results = || {
        std::fs::read_dir(&results).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "dcm"))
        })
    };
    // Without a counted drop nothing reads the spool back: no SEG after a full read-back
    // period and the stable time.
    tokio::time::sleep(Duration::from_secs(13)).await;
    assert!(
        seg_in_results().is_none(),
        "a SEG without any event or counted drop"
    );
    sink.dropped
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seg = loop {
        if let Some(seg) = seg_in_results() {
            break seg;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SEG for the image read back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(sink);
    let summary = tokio::time::timeout(Duration::from_secs(30), driver)
        .await
        .expect("the pipelines stop")
        .unwrap();
    assert_eq!(summary.completed.len(), 1, "{:?}", summary.failed);
    let scores = segnode::eval::evaluate_files(&seg, &image.truth_path, None).unwrap();
    assert!(scores.iter().all(|s| s.dice >= 0.9), "{scores:?}");
    scp.stop().await;
}
