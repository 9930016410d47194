//! gRPC, a sibling of `http/` on its own port (`--grpc-port`): KServe's Open Inference Protocol v2
//! (`inference.GRPCInferenceService`, [`oip`]), text-embeddings-inference's API (`tei.v1`, [`tei`])
//! and `grpc.health.v1` ([`health`]), thin adapters
//! over the same [`crate::infer::Infer`] the HTTP routes call. Every RPC goes through one edge
//! ([`call`]): request id, trace context, API key, admission (`Infer::shed`), the deadline
//! (`grpc-timeout`, capped by `--request-timeout`), metrics and the access log; each error becomes
//! a `tonic::Status` once ([`status`]). Message sizes are bounded like HTTP bodies: requests by
//! `--body-limit`, responses by `--max-response-bytes`.
//!
//! On drain the health service answers NOT_SERVING at once (it reads the server's readiness), and
//! once the listeners close the server stops accepting and finishes the RPCs in flight.

pub mod call;
pub mod health;
pub mod oip;
pub mod status;
pub mod tei;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::http::state::AppState;

/// The code generated from the vendored protos (proto/, compiled by build.rs).
pub mod pb {
    /// KServe's `grpc_predict_v2.proto` (package `inference`).
    #[allow(clippy::all, missing_docs)]
    pub mod inference {
        tonic::include_proto!("inference");
    }

    /// text-embeddings-inference's `tei.proto` (package `tei.v1`).
    #[allow(clippy::all, missing_docs)]
    pub mod tei {
        tonic::include_proto!("tei.v1");
    }
}

/// What the gRPC server needs from the configuration.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// Largest request message (decoded), in bytes: `--body-limit`.
    pub max_request_bytes: usize,
    /// Largest response message (encoded), in bytes: above `--max-response-bytes`, which the
    /// service already enforces from its estimate before the model runs, by the framing's slack.
    pub max_response_bytes: usize,
    /// The priority classes' defaults (each class's timeout), as HTTP's timeout layer has them.
    pub classes: crate::infer::Classes,
}

/// The gRPC services, built with the HTTP router before the model loads (they answer UNAVAILABLE
/// until it is ready, health NOT_SERVING).
pub struct GrpcServer {
    edge: Arc<call::Edge>,
    config: GrpcConfig,
}

impl GrpcServer {
    /// `keys` are the HTTP router's own (one set, one reload thread).
    pub fn new(state: Arc<AppState>, config: GrpcConfig, keys: Arc<crate::auth::Keys>) -> Self {
        Self { edge: Arc::new(call::Edge::new(state, keys, config.classes)), config }
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting and returns once the
    /// RPCs in flight are answered. Drops the services (and with them the inference service).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Self { edge, config } = self;
        let inference =
            pb::inference::grpc_inference_service_server::GrpcInferenceServiceServer::new(oip::Oip::new(edge.clone()))
                .max_decoding_message_size(config.max_request_bytes)
                .max_encoding_message_size(config.max_response_bytes);
        let tei = tei::Tei::new(edge.clone());
        // Each TEI service with the same message limits as the inference service.
        macro_rules! limited {
            ($server:expr) => {
                $server
                    .max_decoding_message_size(config.max_request_bytes)
                    .max_encoding_message_size(config.max_response_bytes)
            };
        }
        use pb::tei::{embed_server, info_server, predict_server, rerank_server, tokenize_server};
        let health = tonic_health::pb::health_server::HealthServer::new(health::HealthService::new(edge));
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let served = tonic::transport::Server::builder()
            .add_service(inference)
            .add_service(limited!(info_server::InfoServer::new(tei.clone())))
            .add_service(limited!(embed_server::EmbedServer::new(tei.clone())))
            .add_service(limited!(predict_server::PredictServer::new(tei.clone())))
            .add_service(limited!(rerank_server::RerankServer::new(tei.clone())))
            .add_service(limited!(tokenize_server::TokenizeServer::new(tei)))
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        if let Err(e) = served {
            tracing::error!("gRPC server failed: {e}");
        }
    }
}
