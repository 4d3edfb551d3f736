//! From a node config to the pipelines it runs: every enabled definition found and
//! validated, every destination it names configured, every model loaded and warmed.
//! `serve` loads the set before it binds a port, `check-config` reports what would stop
//! it (without loading models), and `segment` loads one pipeline the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::pipeline::definition::PipelineDefinition;
use crate::pipeline::job::{JobError, LoadedPipeline};

/// Why a pipeline cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("pipeline {name}: {source}")]
    Definition { name: String, source: ConfigError },
    #[error(
        "pipeline {name}: {source} (build the models with `make models`, or fix pipelines.models_dir)"
    )]
    Model { name: String, source: Box<JobError> },
    #[error(
        "pipeline {pipeline}: output.destinations names {destination:?}, which is not a \
         [[destinations]] entry of the node config (configured: {configured})"
    )]
    UnknownDestination {
        pipeline: String,
        destination: String,
        configured: String,
    },
    #[error(
        "pipeline {pipeline}: applies_to.called_ae_titles names {title:?}, but the node rejects \
         associations calling it (it answers to {answers_to}); add {title:?} to node.ae_titles"
    )]
    UnansweredCalledAe {
        pipeline: String,
        title: String,
        answers_to: String,
    },
}

/// The enabled pipelines, loaded: what the node's worker runs and the dashboard shows.
#[derive(Clone, Default)]
pub struct PipelineSet(Vec<Arc<LoadedPipeline>>);

impl PipelineSet {
    /// Load every enabled pipeline of `config`: definitions and destinations first (so a
    /// typo fails in milliseconds), then each model with its warm-up forward. Blocking
    /// (libtorch): call it from `spawn_blocking` in async code.
    pub fn load(config: &Config) -> Result<PipelineSet, LoadError> {
        let definitions = enabled_definitions(config)?;
        let mut loaded = Vec::with_capacity(definitions.len());
        for definition in definitions {
            loaded.push(Arc::new(load_one(
                definition,
                &config.pipelines.models_dir,
            )?));
        }
        Ok(PipelineSet(loaded))
    }

    /// [`PipelineSet::load`] off the async runtime (model loading and warm-up block for
    /// seconds); a panic while loading is resumed on the caller.
    pub async fn load_in_background(config: &Config) -> Result<PipelineSet, LoadError> {
        let config = config.clone();
        match tokio::task::spawn_blocking(move || PipelineSet::load(&config)).await {
            Ok(loaded) => loaded,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    }

    /// A set of already loaded pipelines (tests, tools).
    pub fn from_loaded(pipelines: Vec<Arc<LoadedPipeline>>) -> PipelineSet {
        PipelineSet(pipelines)
    }

    /// The loaded pipeline called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPipeline>> {
        self.0.iter().find(|p| p.definition.name == name)
    }

    /// Every loaded pipeline, in the order the config enables them.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<LoadedPipeline>> {
        self.0.iter()
    }

    /// Whether no pipeline is enabled (a storing-only node).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Load one definition's model from `models_dir`, naming the pipeline when it fails.
pub fn load_one(
    definition: PipelineDefinition,
    models_dir: &Path,
) -> Result<LoadedPipeline, LoadError> {
    let name = definition.name.clone();
    LoadedPipeline::load(definition, models_dir).map_err(|source| LoadError::Model {
        name,
        source: Box::new(source),
    })
}

/// The enabled definitions, each found, parsed, validated and with its destinations
/// configured; the first problem otherwise.
pub fn enabled_definitions(config: &Config) -> Result<Vec<PipelineDefinition>, LoadError> {
    config
        .pipelines
        .enabled
        .iter()
        .map(|name| checked_definition(config, name))
        .collect()
}

/// What `check-config` reports for one enabled pipeline, without loading its model.
pub struct PipelineCheck {
    /// The enabled name.
    pub name: String,
    /// The definition, or why it cannot be used.
    pub definition: Result<PipelineDefinition, LoadError>,
    /// Where its model file should be (when the definition was read).
    pub model_path: Option<PathBuf>,
}

impl PipelineCheck {
    /// Whether the model file is there (a missing file is the most common start-up stop).
    pub fn model_present(&self) -> bool {
        self.model_path.as_deref().is_some_and(Path::is_file)
    }
}

/// Every enabled pipeline's definition and model file, each checked on its own so that
/// one run of `check-config` names every problem.
pub fn check(config: &Config) -> Vec<PipelineCheck> {
    config
        .pipelines
        .enabled
        .iter()
        .map(|name| {
            let definition = checked_definition(config, name);
            let model_path = definition
                .as_ref()
                .ok()
                .map(|d| d.model_path(&config.pipelines.models_dir));
            PipelineCheck {
                name: name.clone(),
                definition,
                model_path,
            }
        })
        .collect()
}

fn checked_definition(config: &Config, name: &str) -> Result<PipelineDefinition, LoadError> {
    let definition =
        PipelineDefinition::find(name, &config.pipelines.definitions_dir).map_err(|source| {
            LoadError::Definition {
                name: name.to_string(),
                source,
            }
        })?;
    if let Some(destination) = definition
        .output
        .destinations
        .iter()
        .find(|d| config.destination(d).is_none())
    {
        let names: Vec<&str> = config
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        return Err(LoadError::UnknownDestination {
            pipeline: definition.name.clone(),
            destination: destination.clone(),
            configured: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        });
    }
    // A title the SCP rejects would leave the pipeline waiting for studies that can never
    // reach it.
    if config.access.check_called_ae
        && let Some(title) = definition
            .applies_to
            .called_ae_titles
            .iter()
            .find(|t| !config.node.answers_to(t))
    {
        return Err(LoadError::UnansweredCalledAe {
            pipeline: definition.name.clone(),
            title: title.clone(),
            answers_to: config.node.titles().join(", "),
        });
    }
    Ok(definition)
}
