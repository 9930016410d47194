//! Graceful shutdown under load, as Kubernetes does it: SIGTERM → not ready at once, keep serving
//! through the drain delay, stop accepting, finish every accepted request, exit 0.

use crate::common;

use std::time::Duration;

use common::load::ClosedLoop;
use common::server::Server;
use reqwest::Client;

#[tokio::test]
async fn sigterm_under_load_loses_no_accepted_request() {
    let mut server =
        Server::start("all-MiniLM-L6-v2", &["--drain-delay", "1s", "--shutdown-timeout", "20s", "--max-wait", "5ms"]);
    let client = Client::new();
    let load = ClosedLoop::start(&client, server.url("/embed"), 16, "drain");

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(load.ok() > 0, "load is flowing");
    // The listener closes one drain delay after SIGTERM (minus a margin for scheduling).
    load.listener_closes_in(Duration::from_millis(950));
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready at once after SIGTERM");
    let during_drain = load.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(load.ok() > during_drain, "still serving during the drain delay");

    let status = server.wait_exit(Duration::from_secs(25)).expect("exits within the grace period");
    let tally = load.stop().await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(tally.lost, 0, "an accepted request was lost or got a non-200");
    assert!(server.wait_log("shut down cleanly", Duration::from_secs(2)), "no clean shutdown in the log");
    eprintln!("ok={} refused_after_close={}", tally.ok, tally.refused);
}
