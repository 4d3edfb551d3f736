//! Assembler rules with explicit instants: no sleeps, no clock.

use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::definition::{EMBEDDED_DCE_BREAST, PipelineDefinition};
use crate::uids;

const STUDY: &str = "1.2.826.0.1.1";

fn pipeline(min_slices: usize, force_policy: &str) -> Assembler {
    let text = EMBEDDED_DCE_BREAST
        .replace("min_slices = 96", &format!("min_slices = {min_slices}"))
        .replace(
            "force_policy = \"drop\"",
            &format!("force_policy = \"{force_policy}\""),
        );
    Assembler::new(&[PipelineDefinition::from_toml(&text, "test").unwrap()])
}

/// An instance of series `series` (SeriesNumber = series, AcquisitionTime ordered by it).
fn instance(study: &str, series: i32, sop: usize, association: u64) -> InstanceSeen {
    InstanceSeen {
        header: InstanceHeader {
            sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: format!("{study}.{series}.{sop}"),
            study_uid: study.into(),
            series_uid: format!("{study}.{series}"),
            modality: "MR".into(),
            series_number: Some(series),
            series_description: format!("Ax DCE phase {series}"),
            acquisition_time: format!("1200{:02}", series),
            series_time: format!("1200{:02}", series),
            ..Default::default()
        },
        origin: Origin {
            association_id: Some(association),
            calling_ae: "STORESCU".into(),
            called_ae: "SEGNODE".into(),
        },
    }
}

fn send_series(
    a: &mut Assembler,
    study: &str,
    series: i32,
    slices: usize,
    association: u64,
    now: Instant,
) -> Vec<Decision> {
    (0..slices)
        .flat_map(|i| a.on_instance(&instance(study, series, i, association), now))
        .collect()
}

fn ready(decisions: &[Decision]) -> Vec<&JobSpec> {
    decisions
        .iter()
        .filter_map(|d| {
            if let Decision::Ready(j) = d {
                Some(j)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn waits_for_a_missing_channel_then_runs_once_stable() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..8 {
        assert!(send_series(&mut a, STUDY, s, 4, 1, t0).is_empty());
    }
    // Three of four channels: nothing, however long we wait short of the force timeout.
    assert!(a.on_tick(t0 + Duration::from_secs(300)).is_empty());
    let t1 = t0 + Duration::from_secs(301);
    assert!(
        send_series(&mut a, STUDY, 8, 4, 1, t1).is_empty(),
        "complete, but not stable yet"
    );
    assert!(a.on_tick(t1 + Duration::from_secs(29)).is_empty());
    assert_eq!(a.next_deadline(), Some(t1 + Duration::from_secs(30)));
    let d = a.on_tick(t1 + Duration::from_secs(30));
    let jobs = ready(&d);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].trigger, Trigger::Stable);
    let names: Vec<_> = jobs[0].channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["pre", "post1", "post2", "post3"]);
    assert_eq!(jobs[0].channels[0].series_uid, format!("{STUDY}.5"));
    assert_eq!(jobs[0].channels[3].series_uid, format!("{STUDY}.8"));
    assert!(
        a.on_tick(t1 + Duration::from_secs(3600)).is_empty(),
        "decided once"
    );
}

#[test]
fn fewer_than_min_slices_waits() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..9 {
        send_series(&mut a, STUDY, s, if s == 7 { 3 } else { 4 }, 1, t0);
    }
    assert!(a.on_tick(t0 + Duration::from_secs(60)).is_empty());
    send_series(&mut a, STUDY, 7, 4, 1, t0 + Duration::from_secs(61));
    assert_eq!(ready(&a.on_tick(t0 + Duration::from_secs(91))).len(), 1);
}

#[test]
fn resent_instances_do_not_double_count() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 3, 1, t0);
        send_series(&mut a, STUDY, s, 3, 1, t0); // the same 3 again
    }
    assert!(
        a.on_tick(t0 + Duration::from_secs(60)).is_empty(),
        "3 distinct slices < 4, despite 6 arrivals"
    );
}

#[test]
fn extra_series_are_ignored() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    let mut loc = instance(STUDY, 1, 0, 1);
    loc.header.series_description = "3-plane loc".into();
    loc.header.acquisition_time = "110000".into();
    a.on_instance(&loc, t0);
    let mut sub = instance(STUDY, 20, 0, 1);
    sub.header.series_description = "Ax DCE SUB post1-pre".into();
    sub.header.acquisition_time = "110500".into();
    for i in 0..4 {
        sub.header.sop_instance_uid = format!("{STUDY}.20.{i}");
        a.on_instance(&sub, t0);
    }
    let mut ct = instance(STUDY, 30, 0, 1);
    ct.header.modality = "CT".into();
    a.on_instance(&ct, t0);
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 4, 1, t0);
    }
    let d = a.on_tick(t0 + Duration::from_secs(30));
    let job = ready(&d)[0];
    let series: Vec<_> = job.channels.iter().map(|c| c.series_uid.clone()).collect();
    assert_eq!(
        series,
        (5..9).map(|s| format!("{STUDY}.{s}")).collect::<Vec<_>>()
    );
}

#[test]
fn a_fifth_dynamic_series_is_ignored_with_a_note() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..10 {
        send_series(&mut a, STUDY, s, 4, 1, t0);
    }
    let d = a.on_tick(t0 + Duration::from_secs(30));
    let job = ready(&d)[0];
    assert_eq!(job.channels[3].series_uid, format!("{STUDY}.8"));
    assert!(
        job.notes.iter().any(|n| n.contains("ignored series 9")),
        "{:?}",
        job.notes
    );
}

#[test]
fn force_timeout_policies() {
    let t0 = Instant::now();
    // drop: gives up with a reason naming what is missing.
    let mut a = pipeline(4, "drop");
    for s in 5..8 {
        send_series(&mut a, STUDY, s, 4, 1, t0);
    }
    let d = a.on_tick(t0 + Duration::from_secs(900));
    match &d[..] {
        [Decision::GiveUp { reason, .. }] => assert!(reason.contains("post3"), "{reason}"),
        other => panic!("expected a give-up, got {other:?}"),
    }
    // run: runs with fewer slices when every channel is matched ...
    let mut a = pipeline(4, "run");
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 2, 1, t0);
    }
    let d = a.on_tick(t0 + Duration::from_secs(900));
    assert_eq!(ready(&d)[0].trigger, Trigger::Forced);
    // ... and gives up when a channel is missing.
    let mut a = pipeline(4, "run");
    send_series(&mut a, STUDY, 5, 4, 1, t0);
    assert!(matches!(
        a.on_tick(t0 + Duration::from_secs(900))[..],
        [Decision::GiveUp { .. }]
    ));
}

#[test]
fn association_release_starts_at_once() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 4, 42, t0);
    }
    assert!(
        a.on_association_released(7, t0).is_empty(),
        "another association"
    );
    let d = a.on_association_released(42, t0 + Duration::from_millis(5));
    assert_eq!(ready(&d)[0].trigger, Trigger::AssociationReleased);
}

#[test]
fn interleaved_studies_on_one_association_are_kept_apart() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    let other = "1.2.826.0.1.2";
    for i in 0..4 {
        for s in 5..9 {
            a.on_instance(&instance(STUDY, s, i, 1), t0);
            a.on_instance(&instance(other, s, i, 1), t0);
        }
    }
    let d = a.on_association_released(1, t0);
    let jobs = ready(&d);
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        assert!(
            job.channels
                .iter()
                .all(|c| c.series_uid.starts_with(&job.study_uid))
        );
        assert!(job.channels.iter().all(|c| c.instances.len() == 4));
    }
}

#[test]
fn one_series_with_four_temporal_positions_is_split() {
    let mut a = pipeline(3, "drop");
    let t0 = Instant::now();
    for tp in 1..=4u32 {
        for i in 0..3 {
            let mut seen = instance(STUDY, 5, (tp as usize) * 100 + i, 1);
            seen.header.temporal_position = Some(tp);
            seen.header.acquisition_time = format!("12{:02}00", tp);
            a.on_instance(&seen, t0);
        }
    }
    let d = a.on_tick(t0 + Duration::from_secs(30));
    let job = ready(&d)[0];
    let tps: Vec<_> = job.channels.iter().map(|c| c.temporal_position).collect();
    assert_eq!(tps, [Some(1), Some(2), Some(3), Some(4)]);
    assert!(
        job.channels
            .iter()
            .all(|c| c.series_uid == format!("{STUDY}.5") && c.instances.len() == 3)
    );
}

#[test]
fn the_same_study_sent_again_gives_no_second_job_but_changed_inputs_do() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 4, 1, t0);
    }
    assert_eq!(ready(&a.on_tick(t0 + Duration::from_secs(30))).len(), 1);
    let t1 = t0 + Duration::from_secs(100);
    for s in 5..9 {
        send_series(&mut a, STUDY, s, 4, 2, t1);
    }
    let d = a.on_tick(t1 + Duration::from_secs(30));
    assert!(ready(&d).is_empty());
    assert!(matches!(&d[..], [Decision::GiveUp { reason, .. }] if reason.contains("unchanged")));
    let t2 = t1 + Duration::from_secs(100);
    send_series(&mut a, STUDY, 8, 5, 3, t2); // one more slice in post3
    let d = a.on_tick(t2 + Duration::from_secs(30));
    let jobs = ready(&d);
    assert_eq!(jobs.len(), 1, "changed inputs: a new job");
    assert!(
        jobs[0]
            .notes
            .iter()
            .any(|n| n.contains("inputs changed since the last SEG")),
        "{:?}",
        jobs[0].notes
    );
}

#[test]
fn tag_rules_select_the_studies_a_pipeline_takes() {
    let text = EMBEDDED_DCE_BREAST.replace("min_slices = 96", "min_slices = 2").replace(
        "called_ae_titles = []",
        "called_ae_titles = []\n[[applies_to.tags]]\nkeyword = \"BodyPartExamined\"\nregex = \"(?i)^breast$\"",
    );
    let mut a = Assembler::new(&[PipelineDefinition::from_toml(&text, "test").unwrap()]);
    let t0 = Instant::now();
    let tagged = |study: &str, series, sop, body: Option<&str>| {
        let mut seen = instance(study, series, sop, 1);
        if let Some(b) = body {
            seen.header
                .attributes
                .insert("BodyPartExamined".into(), b.into());
        }
        seen
    };
    let knee = "1.2.826.0.1.9";
    for s in 5..9 {
        for i in 0..2 {
            a.on_instance(&tagged(STUDY, s, i, Some("BREAST")), t0);
            a.on_instance(&tagged(knee, s, i, Some("KNEE")), t0);
            a.on_instance(&tagged("1.2.826.0.1.10", s, i, None), t0);
        }
    }
    let d = a.on_tick(t0 + Duration::from_secs(30));
    let jobs = ready(&d);
    assert_eq!(jobs.len(), 1, "{d:?}");
    assert_eq!(jobs[0].study_uid, STUDY);

    let bad = EMBEDDED_DCE_BREAST.replace(
        "called_ae_titles = []",
        "called_ae_titles = []\n[[applies_to.tags]]\nkeyword = \"PatientName\"\nregex = \".\"",
    );
    let err = PipelineDefinition::from_toml(&bad, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("applies_to.tags[0].keyword") && err.contains("BodyPartExamined"),
        "{err}"
    );
}

fn us_instance(study: &str, sop: usize, association: u64) -> InstanceSeen {
    InstanceSeen {
        header: InstanceHeader {
            sop_class_uid: uids::US_IMAGE_STORAGE.into(),
            sop_instance_uid: format!("{study}.9.{sop}"),
            study_uid: study.into(),
            series_uid: format!("{study}.9"),
            modality: "US".into(),
            series_number: Some(9),
            series_description: "Fetal head".into(),
            ..Default::default()
        },
        origin: Origin {
            association_id: Some(association),
            calling_ae: "STORESCU".into(),
            called_ae: "SEGNODE".into(),
        },
    }
}

fn fetal_and_dce() -> Assembler {
    let fetal =
        PipelineDefinition::from_toml(crate::pipeline::definition::EMBEDDED_FETAL_HEAD_US, "fetal")
            .unwrap();
    let dce = PipelineDefinition::embedded_dce_breast().unwrap();
    Assembler::new(&[dce, fetal])
}

#[test]
fn per_instance_pipelines_make_one_job_per_image_of_the_study() {
    let mut a = fetal_and_dce();
    let t0 = Instant::now();
    for sop in 0..3 {
        assert!(a.on_instance(&us_instance(STUDY, sop, 7), t0).is_empty());
    }
    // The association ends: every image is a job of its own, for the same study.
    let jobs = a.on_association_released(7, t0 + Duration::from_millis(10));
    let jobs = ready(&jobs);
    assert_eq!(jobs.len(), 3);
    let mut sops: Vec<&str> = jobs
        .iter()
        .map(|j| {
            assert_eq!(
                (j.pipeline.as_str(), j.study_uid.as_str()),
                ("fetal_head_us", STUDY)
            );
            assert_eq!(j.channels.len(), 1);
            j.channels[0].instances[0].as_str()
        })
        .collect();
    sops.sort();
    assert_eq!(
        sops,
        [
            format!("{STUDY}.9.0"),
            format!("{STUDY}.9.1"),
            format!("{STUDY}.9.2")
        ]
    );
    let fingerprints: std::collections::HashSet<u64> = jobs.iter().map(|j| j.fingerprint).collect();
    assert_eq!(fingerprints.len(), 3, "each image its own inputs");

    // Without a release, the stable time (2 s) lets an image go.
    let t1 = t0 + Duration::from_secs(60);
    assert!(a.on_instance(&us_instance(STUDY, 3, 8), t1).is_empty());
    assert!(a.on_tick(t1 + Duration::from_secs(1)).is_empty());
    assert_eq!(ready(&a.on_tick(t1 + Duration::from_secs(2))).len(), 1);
    // The same image again: nothing new.
    let again = a.on_instance(&us_instance(STUDY, 3, 9), t1 + Duration::from_secs(5));
    let again: Vec<Decision> = again
        .into_iter()
        .chain(a.on_association_released(9, t1 + Duration::from_secs(5)))
        .collect();
    assert!(ready(&again).is_empty(), "{again:?}");
    assert!(
        matches!(&again[0], Decision::GiveUp { reason, .. } if reason.contains("unchanged") && reason.contains(".9.3"))
    );
}

#[test]
fn per_instance_jobs_remembered_after_a_restart_do_not_run_again() {
    let mut first = fetal_and_dce();
    let t0 = Instant::now();
    for sop in 0..2 {
        first.on_instance(&us_instance(STUDY, sop, 1), t0);
    }
    let jobs = first.on_association_released(1, t0);
    let done = ready(&jobs)
        .into_iter()
        .find(|j| j.channels[0].instances[0].ends_with(".9.1"))
        .unwrap()
        .fingerprint;

    // Restart: both images are read back; only .9.1 had finished.
    let mut again = fetal_and_dce();
    for sop in 0..2 {
        again.restore_instance(&us_instance(STUDY, sop, 0), t0);
    }
    again.remember_job("fetal_head_us", STUDY, done);
    let jobs = again.on_tick(t0 + Duration::from_secs(3));
    let jobs = ready(&jobs);
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].channels[0].instances[0].ends_with(".9.0"));
}

#[test]
fn a_study_short_of_slices_is_shown_then_forced_into_a_job_by_an_operator() {
    let mut a = pipeline(4, "run");
    let t0 = Instant::now();
    for s in 5..8 {
        assert!(send_series(&mut a, STUDY, s, 4, 1, t0).is_empty());
    }
    assert!(send_series(&mut a, STUDY, 8, 2, 1, t0).is_empty());
    let views = a.collecting_studies(t0);
    assert_eq!(views.len(), 1);
    let v = &views[0];
    assert_eq!(v.channels.len(), 4);
    assert!(v.channels.iter().all(|c| c.present));
    assert_eq!(v.channels[3].slices, 2);
    assert!(v.waiting_for.contains("2 of 4 slices"), "{}", v.waiting_for);
    assert_eq!(v.force_policy, "run");
    assert_eq!(
        a.collecting_per_pipeline(),
        vec![("dce_breast".to_string(), 1)]
    );

    let decisions = a.force(STUDY).unwrap();
    assert_eq!(ready(&decisions).len(), 1);
    assert_eq!(ready(&decisions)[0].trigger, Trigger::Operator);
    assert!(a.collecting_studies(t0).is_empty());
    assert_eq!(
        a.force(STUDY).unwrap_err(),
        OperatorError::NotCollecting(STUDY.into())
    );
    // The operator may ask for the same job again.
    match a.rerun("dce_breast", STUDY).unwrap() {
        Decision::Ready(job) => assert_eq!(job.trigger, Trigger::Operator),
        other => panic!("{other:?}"),
    }
}

#[test]
fn forcing_under_drop_gives_the_study_up_with_the_reason() {
    let mut a = pipeline(4, "drop");
    let t0 = Instant::now();
    for s in 5..8 {
        assert!(send_series(&mut a, STUDY, s, 4, 1, t0).is_empty());
    }
    let v = &a.collecting_studies(t0)[0];
    assert!(!v.channels[3].present, "{v:?}");
    match &a.force(STUDY).unwrap()[..] {
        [Decision::GiveUp { reason, .. }] => assert!(reason.contains("operator"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
