//! segnode: a DICOM network node that receives studies by C-STORE, keeps them durably,
//! segments them with TorchScript models and sends DICOM SEG back to the archive.
//!
//! The binary (`src/main.rs`) is a thin CLI over these modules; tests drive them directly.

pub mod ae;
pub mod audit;
pub mod config;
pub mod dimse;
pub mod error_chain;
pub mod eval;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod scp;
pub mod scu;
pub mod serve;
pub mod spool;
pub mod stored_enum;
pub mod synth;
pub mod telemetry;
pub mod tls;
pub mod torch_runtime;
pub mod uids;
pub mod untrusted;
