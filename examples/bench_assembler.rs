//! Benchmark of the study assembler's cost per instance, the Rust half of `make bench`'s
//! assembler part: it must not grow with the number of studies collecting.
//!
//! ```sh
//! cargo run --release --example bench_assembler -- --collecting 1 500 --instances 2000
//! ```
//!
//! For each count of collecting studies, the assembler of the shipped DCE pipeline is
//! filled with that many incomplete studies (one series of 8 slices each), then
//! `--instances` instances of one more study are fed to it, timed, without a clock
//! advancing (so nothing is due and every call is pure bookkeeping). Prints one JSON line
//! per count: `collecting`, `instances`, `ns_per_instance`.

use std::time::Instant;

use clap::Parser;
use segnode::ingest::{InstanceHeader, Origin};
use segnode::pipeline::assembler::{Assembler, InstanceSeen};
use segnode::pipeline::definition::PipelineDefinition;

/// Command-line options.
#[derive(Parser)]
struct Args {
    /// Counts of studies collecting while the instances arrive.
    #[arg(long, num_args = 1.., default_values_t = [1usize, 500])]
    collecting: Vec<usize>,
    /// Instances timed per count.
    #[arg(long, default_value_t = 2000)]
    instances: usize,
}

fn instance(study: usize, series: usize, sop: usize) -> InstanceSeen {
    InstanceSeen {
        header: InstanceHeader {
            sop_class_uid: segnode::uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: format!("2.25.{study}.{series}.{sop}"),
            study_uid: format!("2.25.{study}"),
            series_uid: format!("2.25.{study}.{series}"),
            modality: "MR".into(),
            series_number: Some(series as i32),
            series_description: format!("Ax DCE phase {series}"),
            acquisition_time: format!("1200{series:02}"),
            series_time: format!("1200{series:02}"),
            ..Default::default()
        },
        origin: Origin {
            association_id: Some(1),
            calling_ae: "BENCH".into(),
            called_ae: "SEGNODE".into(),
        },
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let definition = PipelineDefinition::embedded_dce_breast()?;
    for &collecting in &args.collecting {
        let mut assembler = Assembler::new(std::slice::from_ref(&definition));
        let now = Instant::now();
        for study in 0..collecting {
            for sop in 0..8 {
                assembler.on_instance(&instance(study, 1, sop), now);
            }
        }
        // The timed study: four phases, filled one instance at a time.
        let timed = collecting + 1;
        let started = Instant::now();
        let mut decisions = 0;
        for i in 0..args.instances {
            decisions += assembler
                .on_instance(&instance(timed, 1 + i % 4, i / 4), now)
                .len();
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(decisions == 0, "no study can be due without time passing");
        println!(
            "{{\"collecting\": {collecting}, \"instances\": {}, \"ns_per_instance\": {:.0}}}",
            args.instances,
            elapsed.as_nanos() as f64 / args.instances as f64
        );
    }
    Ok(())
}
