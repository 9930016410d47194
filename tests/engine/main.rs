//! The model side without a socket: loading, the golden outputs, batch invariance, request and
//! tokenizer properties, health. Everything runs through the same inference service the server
//! builds ([`pipeserve::infer::Infer`]); one test crate so candle and axum link once.

#[path = "../common/mod.rs"]
mod common;

mod bad_models;
mod batch_invariance;
mod bf16;
mod golden;
mod gpu;
mod health;
mod instances;
mod int8;
mod parse_properties;
mod quality;
