//! pipeserve: an inference server for Hugging Face encoder models.
//!
//! Data flows one way: request → tower layers ([`http`]) → handler → tokenizer ([`tokenize`]) →
//! queue and batcher ([`batching`]) → worker thread ([`worker`]) → model ([`model`]) → (oneshot) →
//! handler → pipeline post-processing ([`pipelines`]).

pub mod app;
pub mod batching;
pub mod config;
pub mod engine;
pub mod http;
pub mod lifecycle;
pub mod model;
pub mod pipelines;
pub mod telemetry;
pub mod threads;
pub mod tokenize;
pub mod worker;
