//! The `segnode` command line: parses arguments, loads config, sets up logging and hands
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use segnode::ae::{AeTitle, Peer};
use segnode::config::Config;

#[derive(Parser)]
#[command(
    name = "segnode",
    version,
    about = "DICOM node that segments studies and returns DICOM SEG"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: receive by C-STORE, spool durably (and later segment and send back).
    Serve {
        /// Config file (TOML). Default: the embedded conf/segnode.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override node.port.
        #[arg(long)]
        port: Option<u16>,
        /// Override node.ae_title.
        #[arg(long)]
        ae_title: Option<AeTitle>,
        /// Override node.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a config file and print the effective settings.
    CheckConfig {
        /// Config file (TOML). Default: the embedded conf/segnode.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List what the spool holds: studies, series, instance counts.
    Status {
        /// Config file whose node.data_dir to read. Default: the embedded config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Read this data folder instead.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON: from the running node's admin API (`/api/status`, at the config's
        /// `[http]` address), else what the spool holds.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic study with its ground truth (truth.toml): a 4-phase DCE-MRI breast
    /// study (dce-breast) or a fetal head ultrasound image (fetal-us).
    Synth(SynthArgs),
    /// Run a pipeline offline on a folder holding one study; write the SEG.
    Segment {
        /// Folder with the study's DICOM files (searched recursively).
        input: PathBuf,
        /// Where to write the SEG.
        #[arg(long)]
        out: PathBuf,
        /// Pipeline name.
        #[arg(long, default_value = "dce_breast")]
        pipeline: String,
        /// Folder of pipeline definitions (`<name>.toml`): the config's
        /// `pipelines.definitions_dir`. `--pipelines-dir` is its former name.
        #[arg(long, default_value = "conf/pipelines", alias = "pipelines-dir")]
        definitions_dir: PathBuf,
        /// Folder the pipeline's model file is relative to.
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
        /// Also write the measurement report (DICOM SR) beside the SEG, as
        /// `<SEG stem>-report.dcm`, with the pipeline's `output.report` measurements (all
        /// that apply when the pipeline lists none).
        #[arg(long)]
        report: bool,
    },
    /// Score a SEG against a synthetic image's truth (DCE lesion or fetal head): Dice, IoU
    /// and pixel accuracy per segment.
    Eval {
        /// The SEG file.
        seg: PathBuf,
        /// truth.toml, or the synthetic study folder holding it.
        truth: PathBuf,
        /// Score only this segment number (default: every segment).
        #[arg(long)]
        segment: Option<u16>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also compare the measurement report beside the SEG (`<SEG stem>-report.dcm`, as
        /// `segment --report` writes it) with the truth: volume and diameter, or HC, BPD
        /// and OFD.
        #[arg(long)]
        report: bool,
    },
    /// C-ECHO a DICOM node: segnode echo AE@HOST:PORT.
    Echo {
        /// The peer, as AE@HOST:PORT.
        peer: Peer,
        #[command(flatten)]
        scu: ScuArgs,
    },
    /// C-STORE files or folders (recursive) to a DICOM node: segnode send AE@HOST:PORT PATH...
    Send {
        /// The peer, as AE@HOST:PORT.
        peer: Peer,
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        scu: ScuArgs,
    },
}

/// What `segnode synth` generates.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Preset {
    /// Synthetic 4-phase DCE-MRI breast study.
    DceBreast,
    /// Synthetic fetal head ultrasound image (transventricular plane).
    FetalUs,
}

/// The options of `segnode synth`, as given.
#[derive(clap::Args)]
struct SynthArgs {
    /// Output folder (created).
    outdir: PathBuf,
    /// What to generate.
    #[arg(long, value_enum, default_value_t = Preset::DceBreast)]
    preset: Preset,
    /// Random seed (anatomy, lesion or head placement, noise).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// dce-breast: slice orientation [default: axial].
    #[arg(long)]
    orientation: Option<segnode::synth::Orientation>,
    /// dce-breast: number InstanceNumber against the slice order (a reader sorting by it
    /// gets it backwards).
    #[arg(long)]
    reverse: bool,
    /// dce-breast: slices per phase [default: 128].
    #[arg(long)]
    slices: Option<usize>,
    /// dce-breast: rows and columns [default: 256].
    #[arg(long)]
    size: Option<usize>,
    /// dce-breast: do not write the 3-plane localizer series.
    #[arg(long)]
    no_localizer: bool,
    /// fetal-us: pixel encoding, jpeg (JPEG Baseline, YBR_FULL_422), rgb or mono
    /// [default: jpeg].
    #[arg(long)]
    encoding: Option<segnode::synth::UsEncoding>,
    /// fetal-us: frames; more than 1 writes a multi-frame cine loop [default: 1].
    #[arg(long)]
    frames: Option<u32>,
}

#[derive(clap::Args)]
struct ScuArgs {
    /// Our calling AE title.
    #[arg(long, default_value = "SEGNODE")]
    calling_ae: AeTitle,
    /// Seconds to wait for connection, association and each response.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// DICOM over TLS: PEM file of the CA the peer's certificate must chain to.
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// With --tls-ca: our client certificate (PEM), for peers that require one.
    #[arg(long, value_name = "PEM", requires = "tls_ca", requires = "tls_key")]
    tls_certificate: Option<PathBuf>,
    /// With --tls-certificate: its private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_certificate")]
    tls_key: Option<PathBuf>,
}

impl ScuArgs {
    fn options(&self) -> anyhow::Result<segnode::scu::ScuOptions> {
        let t = Duration::from_secs(self.timeout.max(1));
        let tls = match &self.tls_ca {
            None => None,
            Some(ca) => Some(
                segnode::tls::PeerTlsConfig {
                    ca: ca.clone(),
                    certificate: self.tls_certificate.clone(),
                    private_key: self.tls_key.clone(),
                }
                .load()
                .map_err(|e| {
                    let flag = if e.key == "private_key" { "key" } else { e.key };
                    anyhow::anyhow!("--tls-{flag} {}: {}", e.file.display(), e.reason)
                })?,
            ),
        };
        Ok(segnode::scu::ScuOptions {
            calling_ae: self.calling_ae.clone(),
            max_pdu_length: 131_072,
            connect_timeout: t,
            read_timeout: t,
            write_timeout: t,
            tls,
        })
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default()?,
    })
}

/// dicom-rs makes a snafu error at the end of every data set it parses, and snafu captures
/// a backtrace for each when RUST_BACKTRACE is set: about 30 µs per parse, twice per
/// received instance, for backtraces segnode never shows. Library backtraces are therefore
/// off (RUST_LIB_BACKTRACE=0) unless the operator set RUST_LIB_BACKTRACE; panics still
/// honour RUST_BACKTRACE.
fn no_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

fn main() -> ExitCode {
    no_library_backtraces();
    let cli = Cli::parse();
    segnode::telemetry::init("info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", segnode::error_chain::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            port,
            ae_title,
            data_dir,
        } => {
            let mut cfg = load_config(config.as_ref())?;
            cfg.override_with(port, ae_title, data_dir);
            segnode::serve::run(cfg, segnode::serve::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let cfg = load_config(config.as_ref())?;
            let given = match &config {
                Some(path) => std::fs::read_to_string(path)?,
                None => segnode::config::EMBEDDED_DEFAULT.to_string(),
            };
            println!("# effective configuration (keys marked `# default` are not in the file)");
            print!("{}", cfg.effective_toml(&given)?);
            println!();
            let problems = check_pipelines(&cfg);
            if problems == 0 {
                println!("config OK");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("config has {problems} problem(s) in its pipelines (see above)");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Status {
            config,
            data_dir,
            json,
        } => {
            let mut cfg = load_config(config.as_ref())?;
            cfg.override_with(None, None, data_dir);
            if json {
                let value = tokio::task::spawn_blocking(move || status_json(&cfg))
                    .await
                    .context("status task failed")??;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", segnode::spool::status_report(&cfg.node.data_dir)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth(args) => synth(args),
        Command::Segment {
            input,
            out,
            pipeline,
            definitions_dir,
            models_dir,
            report,
        } => tokio::task::spawn_blocking(move || {
            segment(
                &input,
                &out,
                &pipeline,
                &definitions_dir,
                &models_dir,
                report,
            )
        })
        .await
        .context("segmentation task failed")?,
        Command::Eval {
            seg,
            truth,
            segment,
            json,
            report,
        } => {
            let scores = segnode::eval::evaluate_files(&seg, &truth, segment)?;
            let measured = if report {
                let path = segnode::pipeline::report::report_path(&seg);
                let rows = segnode::eval::compare_report(&path, &segnode::eval::truth_file(&truth))
                    .with_context(|| format!("measurement report {}", path.display()))?;
                Some(rows)
            } else {
                None
            };
            if json {
                let value = match &measured {
                    Some(rows) => serde_json::json!({"scores": scores, "measurements": rows}),
                    None => serde_json::to_value(&scores)?,
                };
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", segnode::eval::table(&scores));
                if let Some(rows) = &measured {
                    print!("\n{}", segnode::eval::report_table(rows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Echo { peer, scu } => {
            let status = segnode::scu::echo(&peer, &scu.options()?)
                .await
                .with_context(|| format!("C-ECHO to {peer} failed"))?;
            println!("C-ECHO {peer}: {status}");
            Ok(if status.is_success_or_warning() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Send { peer, paths, scu } => {
            let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = segnode::scu::send_paths(&peer, &scu.options()?, &paths, show_progress)
                .await
                .with_context(|| format!("C-STORE to {peer} failed"))?;
            print!("{}", report.summary_table());
            for (path, reason) in &report.skipped {
                eprintln!("skipped: {}: {reason}", path.display());
            }
            for (path, reason) in &report.failures {
                eprintln!("failed: {}: {reason}", path.display());
            }
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `segnode status --json`: the running node's `/api/status`; when no node answers there,
/// the spool's counts with `"node_running": false`.
fn status_json(cfg: &Config) -> anyhow::Result<serde_json::Value> {
    if cfg.http.enabled {
        let host = if cfg.http.bind.is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            cfg.http.bind
        };
        let addr = std::net::SocketAddr::new(host, cfg.http.port);
        if let Ok(response) =
            segnode::http::client::get(addr, "/api/status", Duration::from_secs(10))
            && response.status == 200
        {
            let mut value = response
                .json()
                .with_context(|| format!("the node at http://{addr} answered with no JSON"))?;
            value["node_running"] = serde_json::Value::Bool(true);
            return Ok(value);
        }
    }
    let spool = segnode::spool::Spool::open_existing(&cfg.node.data_dir)?;
    let counts = spool.counts()?;
    Ok(serde_json::json!({
        "node_running": false,
        "spool": {
            "data_dir": cfg.node.data_dir,
            "studies": counts.studies,
            "series": counts.series,
            "instances": counts.instances,
            "unfiled": spool.unfiled()?,
        },
        "recent_jobs": spool.jobs().recent(10)?,
    }))
}

/// `segnode synth`: write the preset's study and print what was written.
fn synth(args: SynthArgs) -> anyhow::Result<ExitCode> {
    use segnode::synth::{FetalStructure, FetalUsParams};

    match args.preset {
        Preset::DceBreast => {
            if args.encoding.is_some() || args.frames.is_some() {
                anyhow::bail!("--encoding and --frames apply to --preset fetal-us only");
            }
            let defaults = segnode::synth::DceParams::default();
            let params = segnode::synth::DceParams {
                orientation: args.orientation.unwrap_or(defaults.orientation),
                reverse: args.reverse,
                slices: args.slices.unwrap_or(defaults.slices),
                size: args.size.unwrap_or(defaults.size),
                seed: args.seed,
                with_localizer: !args.no_localizer,
                ..defaults
            };
            let study = segnode::synth::write_dce_study(&args.outdir, &params)?;
            println!("study {} (patient {})", study.study_uid, study.patient_id);
            for s in &study.series {
                println!(
                    "  series {:>3}  {:<28} {:>4} files",
                    s.series_number,
                    s.description,
                    s.files.len()
                );
            }
            println!("truth: {}", study.truth_path.display());
        }
        Preset::FetalUs => {
            if args.orientation.is_some()
                || args.reverse
                || args.slices.is_some()
                || args.size.is_some()
                || args.no_localizer
            {
                anyhow::bail!(
                    "--orientation, --reverse, --slices, --size and --no-localizer apply to \
                     --preset dce-breast only"
                );
            }
            let defaults = FetalUsParams::default();
            let params = FetalUsParams {
                seed: args.seed,
                encoding: args.encoding.unwrap_or(defaults.encoding),
                frames: args.frames.unwrap_or(defaults.frames),
                ..defaults
            };
            let image = segnode::synth::write_fetal_us(&args.outdir, &params)?;
            let counts = image.truth.pixels;
            let lines = [
                ("file", image.path.display().to_string()),
                ("SOP class", image.sop_class_uid.clone()),
                ("transfer syntax", image.transfer_syntax.clone()),
                ("photometric", image.photometric_interpretation.clone()),
                (
                    "frames",
                    format!("{} of {} x {}", image.frames, image.columns, image.rows),
                ),
                ("truth", image.truth_path.display().to_string()),
                (
                    "pixels/frame",
                    format!(
                        "{} {}, {} {}, {} {}",
                        FetalStructure::Brain,
                        counts.brain,
                        FetalStructure::Csp,
                        counts.csp,
                        FetalStructure::Lv,
                        counts.lv
                    ),
                ),
            ];
            for (label, value) in lines {
                println!("{:<16} {value}", format!("{label}:"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print, for every enabled pipeline, its definition's source and summary and whether its
/// model file is there; the number of problems found. No model is loaded.
fn check_pipelines(cfg: &segnode::config::Config) -> usize {
    use segnode::pipeline::definition::JobPer;
    use segnode::pipeline::load;

    let mut problems = 0;
    for check in load::check(cfg) {
        let definition = match &check.definition {
            Ok(d) => d,
            Err(e) => {
                println!("{e}");
                problems += 1;
                continue;
            }
        };
        let unit = match definition.inputs.job_per {
            JobPer::Study => "per study",
            JobPer::Instance => "per instance",
        };
        println!(
            "pipeline {}: {} ({unit}; modalities {}; {} segment(s))",
            check.name,
            definition.description,
            definition.applies_to.modalities.join(", "),
            definition.output.segments.len()
        );
        let model = check
            .model_path
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        if check.model_present() {
            println!("  model {}: present", model.display());
        } else {
            println!(
                "  model {}: MISSING (build the models with `make models`, or fix pipelines.models_dir)",
                model.display()
            );
            problems += 1;
        }
    }
    problems
}

/// `segnode segment`: plan, load the model, run, print what was chosen, found and how long.
fn segment(
    input: &std::path::Path,
    out: &std::path::Path,
    pipeline: &str,
    pipelines_dir: &std::path::Path,
    models_dir: &std::path::Path,
    report: bool,
) -> anyhow::Result<ExitCode> {
    use segnode::pipeline::{definition::PipelineDefinition, load, offline, report as sr, run};

    let mut definition = PipelineDefinition::find(pipeline, pipelines_dir)?;
    definition.output.report = if report {
        let kind = definition.mask_kind();
        definition
            .output
            .report
            .take()
            .or_else(|| Some(sr::ReportConfig::all_for(kind, &definition.segment_specs())))
    } else {
        None
    };
    let plan = offline::plan_folder(&definition, input)?;
    println!(
        "study {}  pipeline {}",
        plan.spec.study_uid, definition.name
    );
    for c in &plan.spec.channels {
        println!(
            "  channel {:<8} <- {:<32} {:>5} slices  {}",
            c.name,
            c.description,
            c.instances.len(),
            c.series_uid
        );
    }
    for note in &plan.spec.notes {
        println!("  note: {note}");
    }
    let load_started = std::time::Instant::now();
    let loaded = load::load_one(definition, models_dir)?;
    let load_time = load_started.elapsed();

    let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let progress = |stage: &str| match &spinner {
        Some(bar) => bar.set_message(stage.to_string()),
        None => tracing::info!(stage, "segmenting"),
    };
    let outcome = run::run_job(
        &loaded,
        &plan.spec.study_uid,
        &plan.channels,
        out,
        &progress,
    );
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    println!(
        "SEG {} ({} frames per segment of {}x{}): {}",
        outcome.seg_sop_instance_uid,
        outcome.slices,
        outcome.rows_cols.0,
        outcome.rows_cols.1,
        outcome.seg_path.display()
    );
    for c in &outcome.companions {
        println!("{} {}: {}", c.kind, c.sop_instance_uid, c.path.display());
    }
    for (label, f) in &outcome.findings {
        println!(
            "  {label}: {} {}, {}, {:.4} % of the {}",
            f.voxels,
            if f.volume_ml.is_some() {
                "voxels"
            } else {
                "pixels"
            },
            f.size(),
            f.fraction_percent,
            if f.volume_ml.is_some() {
                "volume"
            } else {
                "image"
            }
        );
    }
    print!("{}", sr::table(&outcome.report));
    println!(
        "stage timings:\n  {:<28} {:>9.3} s",
        "model load + warm-up",
        load_time.as_secs_f64()
    );
    print!("{}", outcome.timings.table());
    Ok(ExitCode::SUCCESS)
}
