//! CPU profile of the server process for one cell: `perf record` (self time, 999 Hz, kernel
//! included) while the cell runs, its samples grouped by which part of the request path the
//! symbol belongs to. Needs `perf` (linux-perf) and permission to sample the process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Symbol patterns per part of the path, first match wins; `[k]` marks kernel symbols.
const PARTS: &[(&str, &[&str])] = &[
    (
        "model math (GEMM, attention, activations)",
        &[
            "gemm",
            "sgemm",
            "dnnl",
            "mkl_",
            "candle",
            "matmul",
            "pulp",
            "softmax",
            "gelu",
            "layer_norm",
            "half::",
            "avx512",
            "avx2",
            "dot_",
            "conv",
            "_ZN5ndarray",
        ],
    ),
    ("math thread pools (rayon, OpenMP)", &["rayon", "crossbeam_deque", "crossbeam_epoch", "kmp", "gomp", "omp_"]),
    (
        "tokenizer",
        &[
            "tokenizers",
            "onig",
            "regex",
            "unicode_normalization",
            "aho_corasick",
            "spm_precompiled",
            "esaxx",
            "unicode_",
        ],
    ),
    ("HTTP (hyper, axum, tower)", &["hyper", "axum", "tower", "http::", "httparse", "h2::", "bytes::"]),
    ("JSON (serde_json)", &["serde_json", "serde::", "serde_core", "ryu", "itoa", "zmij"]),
    (
        "async runtime, channels, locks",
        &[
            "tokio",
            "futures",
            "parking_lot",
            "std::sync",
            "std::thread",
            "crossbeam_channel",
            "mio::",
            "event_listener",
        ],
    ),
    ("telemetry (metrics, tracing)", &["prometheus", "tracing", "opentelemetry"]),
    (
        "allocation, copies",
        &["mi_", "mimalloc", "memcpy", "memmove", "memset", "malloc", "free", "realloc", "alloc::", "core::ptr::drop"],
    ),
    ("pipeserve (batching, pooling, answers)", &["pipeserve"]),
];
const KERNEL_NETWORK: &[&str] = &[
    "tcp",
    "sock",
    "skb",
    "inet",
    "ip_",
    "net_",
    "netif",
    "__dev_",
    "loopback",
    "napi",
    "epoll",
    "__sys_recv",
    "__sys_send",
    "copy_user",
    "copy_to_user",
    "copy_from_user",
    "nf_",
    "__x64_sys_recv",
    "__x64_sys_send",
];

pub struct Recording {
    child: Child,
    path: PathBuf,
}

/// Shares of the process's samples per part (percent, largest first).
pub struct Profile {
    pub samples: String,
    pub parts: Vec<(String, f64)>,
    /// The largest symbols, for the reader who wants the detail.
    pub top: Vec<(String, f64)>,
}

/// Starts sampling `pid` for `seconds`.
pub fn record(pid: u32, seconds: f64) -> Recording {
    let path = std::env::temp_dir().join(format!("pipeserve-load-{pid}-{}.perf", std::process::id()));
    let child = Command::new("perf")
        .args(["record", "-F", "999", "-p", &pid.to_string(), "-o"])
        .arg(&path)
        .args(["--", "sleep", &format!("{seconds}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf record (install linux-perf)");
    Recording { child, path }
}

impl Recording {
    pub fn finish(mut self) -> Profile {
        let _ = self.child.wait();
        let out = Command::new("perf")
            .args(["report", "--no-children", "--sort", "sym", "--stdio", "--percent-limit", "0", "-i"])
            .arg(&self.path)
            .output()
            .expect("perf report");
        let _ = std::fs::remove_file(&self.path);
        classify(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Groups `perf report --sort sym` lines ("  12.34%  [.] symbol") by part; the header's
/// "# Samples: 9K of event ..." gives the sample count.
pub fn classify(report: &str) -> Profile {
    let samples = report
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let mut parts: Vec<(String, f64)> = Vec::new();
    let mut top = Vec::new();
    let mut add = |part: &str, share: f64| match parts.iter_mut().find(|p| p.0 == part) {
        Some(p) => p.1 += share,
        None => parts.push((part.to_string(), share)),
    };
    for line in report.lines().filter(|l| !l.starts_with('#')) {
        let line = line.trim();
        let Some((share, rest)) = line.split_once('%') else { continue };
        let Ok(share) = share.trim().parse::<f64>() else { continue };
        let rest = rest.trim();
        let kernel = rest.starts_with("[k]");
        let symbol = rest.get(3..).unwrap_or("").trim();
        let part = if kernel {
            if KERNEL_NETWORK.iter().any(|p| symbol.contains(p)) {
                "kernel: loopback TCP, epoll, copies"
            } else {
                "kernel: scheduler, futex, other"
            }
        } else {
            PARTS
                .iter()
                .find(|(_, pats)| pats.iter().any(|p| symbol.contains(p)))
                .map_or("other (libc, unresolved)", |p| p.0)
        };
        add(part, share);
        if top.len() < 12 {
            top.push((symbol.chars().take(90).collect::<String>(), share));
        }
    }
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    Profile { samples, parts, top }
}

/// One table per profiled cell.
pub fn print_tables(profiles: &[(String, Profile)]) {
    for (cell, profile) in profiles {
        println!("\nCPU profile of the server, {cell} (perf, self time, {} samples):\n", profile.samples);
        println!("| part of the path | share of the server's CPU samples |");
        println!("|---|---:|");
        for (part, share) in &profile.parts {
            println!("| {part} | {share:.1}% |");
        }
        println!(
            "\nlargest symbols: {}",
            profile.top.iter().map(|(s, p)| format!("{p:.1}% {s}")).collect::<Vec<_>>().join("; ")
        );
    }
}
