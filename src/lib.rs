//! pipeserve: an inference server for Hugging Face encoder models.
//!
//! Data flows one way: request → tower layers → handler → tokenizer → queue → batcher → worker →
//! model → (oneshot) → handler. This crate's modules follow that order.

pub mod engine;
pub mod model;
pub mod pipelines;
pub mod tokenize;
