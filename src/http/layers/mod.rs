//! The tower layers in front of the handlers, one concern per file.

pub mod access_log;
pub mod auth;
pub mod body;
pub mod error_body;
pub mod hygiene;
pub mod panic;
pub mod request_metrics;
pub mod shed;
pub mod timeout;
pub mod trace_context;
