//! `grpc.health.v1.Health` (tonic-health's service definition), for Kubernetes' gRPC probes: a
//! service is SERVING exactly when the server is ready (loaded, warmed, worker alive, not draining:
//! the readiness `/health/ready` answers), so the answer flips to NOT_SERVING the moment a drain
//! starts. The services it knows: `""` (the server), `inference.GRPCInferenceService`; others are
//! NOT_FOUND (Watch: SERVICE_UNKNOWN, as the protocol says).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::call::{Edge, Guard};

/// The services a health check may name.
const SERVICES: [&str; 2] = ["", "inference.GRPCInferenceService"];

/// How often a Watch looks at the readiness for a change.
const WATCH_EVERY: Duration = Duration::from_millis(250);

pub struct HealthService {
    edge: Arc<Edge>,
}

impl HealthService {
    pub fn new(edge: Arc<Edge>) -> Self {
        Self { edge }
    }
}

fn status(edge: &Edge, service: &str) -> ServingStatus {
    if !SERVICES.contains(&service) {
        return ServingStatus::ServiceUnknown;
    }
    edge.state.health.publish();
    if edge.state.health.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status.into() }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        let edge = &self.edge;
        edge.unary("/grpc.health.v1.Health/Check", Guard::Open, request, |_, request| async move {
            match status(edge, &request.service) {
                ServingStatus::ServiceUnknown => Err(crate::http::error::ApiError::NotFound),
                known => Ok((answer(known), None)),
            }
        })
        .await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    /// The status now, then each change. Once the server drains, the stream ends after its
    /// NOT_SERVING, so an open Watch does not hold the graceful shutdown.
    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let edge = self.edge.clone();
        let service = request.into_inner().service;
        let stream = futures_util::stream::unfold((None, false), move |(last, ended)| {
            let (edge, service) = (edge.clone(), service.clone());
            async move {
                if ended {
                    return None;
                }
                loop {
                    let now = status(&edge, &service);
                    let draining = edge.state.health.is_draining();
                    if last != Some(now) || draining {
                        return Some((Ok(answer(now)), (Some(now), draining)));
                    }
                    tokio::time::sleep(WATCH_EVERY).await;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
