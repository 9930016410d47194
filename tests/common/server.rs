//! Runs the real `pipeserve` binary on a free port for integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `--model <model dir>` and `args`, on port 0, and waits until it is ready.
    pub fn start(model: &str, args: &[&str]) -> Self {
        Self::start_with_env(model, args, &[])
    }

    /// [`Server::start`] with extra environment variables. Trace export variables of the calling
    /// shell are not inherited: only `env` turns tracing on.
    pub fn start_with_env(model: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = super::model_dir(model);
        Self::launch(&dir.to_string_lossy(), args, env, "ready")
    }

    /// Starts the binary with `--model <model>` (a folder or a hub id) and returns once a log line
    /// with message `until` appeared (`listening`: as soon as it serves probes; `ready`: loaded).
    pub fn launch(model: &str, args: &[&str], env: &[(&str, &str)], until: &str) -> Self {
        // TEST_SERVER_BIN runs another build of the server (e.g. the release `mkl` build for the
        // long soak of docs/reliability.md); by default, the binary this test run built.
        let binary = std::env::var("TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pipeserve").to_owned());
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("OTEL_") || name.starts_with("PIPESERVE_") {
                command.env_remove(name);
            }
        }
        command
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", "0", "--json-logs"])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Self::spawn(command, until)
    }

    /// Runs `command`, which must log pipeserve's JSON lines (`listening` with its `address`, then
    /// `until`) on stdout, and returns once `until` appeared. The load bench starts its reference
    /// server (scripts/torch_server.py) this way.
    pub fn spawn(mut command: Command, until: &str) -> Self {
        let until = until.to_string();
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the server process");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut address = String::new();
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["message"] == "listening" {
                            address = v["address"].as_str().unwrap_or_default().to_string();
                        }
                        // The server listens while it loads; most tests start once it is ready.
                        if v["message"] == until.as_str() {
                            let _ = tx.send(address.clone());
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let address = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("server did not start:\n{}", logs.lock().unwrap().join("\n"))
        });
        Self { child, base: format!("http://{address}"), logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until a log line contains `needle` (the log reader may lag the process), at most `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Scrapes `/metrics` and returns the value of one series (exact name with labels), or 0.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        metric_value(&text, series)
    }
}

/// The chart's default memory limit (helm/pipeserve/values.yaml), in KiB: peak RSS stays below it.
pub const CHART_MEMORY_LIMIT_KIB: u64 = 2 * 1024 * 1024;

/// A memory figure of a process in KiB from /proc/<pid>/status: `VmRSS` (now) or `VmHWM` (peak).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The value of a series in Prometheus text format, 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
