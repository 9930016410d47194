//! pipeserve: an inference server for Hugging Face encoder models.
//!
//! Data flows one way: request → tower layers ([`http`]) → handler → inference service ([`infer`])
//! → tokenizer ([`tokenize`]) → queue and batcher ([`batching`]) → worker thread ([`worker`]) →
//! model ([`model`]) → (oneshot) → service → pipeline post-processing ([`pipelines`]) → handler.
//! [`load`] reads a model folder into the values the service is built from; [`app`] and
//! [`lifecycle`] assemble, serve and drain.

pub mod app;
pub mod auth;
pub mod batching;
pub mod config;
pub mod grpc;
pub mod http;
pub mod infer;
pub mod lifecycle;
pub mod load;
pub mod model;
pub mod pipelines;
pub mod telemetry;
pub mod threads;
pub mod tokenize;
pub mod worker;
