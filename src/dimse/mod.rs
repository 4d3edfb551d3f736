//! DIMSE messages shared by the SCP and the SCU: command sets (encoded in Implicit VR
//! Little Endian, PS3.7 6.3.1), the request/response types we speak, and status codes.
//!
//! A command is parsed once into a typed value ([`Command`]) and dispatched on; nothing
//! else in the code reads command-set tags.

pub mod command;
pub mod status;

pub use command::{Command, CommandField, DimseError};
pub use status::Status;
