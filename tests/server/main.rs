//! The real `pipeserve` binary on a free port: routes, batching, security, faults, drain, logs and
//! traces. One test crate so candle and axum link once.

#[path = "../common/mod.rs"]
mod common;

mod bad_input_battery;
mod batching;
mod clients;
mod docs;
mod drain;
mod faults;
mod grpc;
mod hardening;
mod instances;
mod kserve;
mod loading;
mod logs;
mod routes;
mod security;
mod tenants;
mod traces;
