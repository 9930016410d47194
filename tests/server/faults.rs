//! Faults at start-up, on the real binary: a bad model folder or address ends the process with a
//! non-zero status and ONE line on stderr naming the problem, never a panic or a backtrace.
//! (Worker panics, timeouts and cancelled clients at run time: tests/server_batching.rs.)

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs the binary to its exit (it must exit by itself) and returns its one-line reason.
fn start_fails(model: &Path, extra: &[&str], needles: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeserve"))
        .arg("--model")
        .arg(model)
        .args(["--host", "127.0.0.1", "--json-logs"])
        .args(if extra.contains(&"--port") { &[][..] } else { &["--port", "0"][..] })
        .args(extra)
        // Backtraces on: none may reach the reason line.
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{} did not exit", model.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("pipeserve: "), "{line}");
    for n in needles {
        assert!(line.contains(n), "{line:?} should name {n:?}");
    }
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE", ".rs:"] {
        assert!(!stderr.contains(bad) && !stdout.contains(bad), "{bad:?} in the output:\n{stderr}\n{stdout}");
    }
}

#[test]
fn missing_folder() {
    start_fails(Path::new("/definitely/not/here"), &[], &["does not exist"]);
}

#[test]
fn a_file_instead_of_a_folder() {
    let d = common::copy_of("tiny-bert-sentiment");
    start_fails(&d.path().join("config.json"), &[], &["is not a directory"]);
}

#[test]
fn missing_weights() {
    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("model.safetensors")).unwrap();
    start_fails(d.path(), &[], &["no weights"]);
}

#[test]
fn truncated_weights() {
    let d = common::copy_of("tiny-bert-sentiment");
    let path = d.path().join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    start_fails(d.path(), &[], &["cannot read weights", "model.safetensors"]);
}

#[test]
fn corrupt_weights() {
    let d = common::copy_of("tiny-bert-sentiment");
    fs::write(d.path().join("model.safetensors"), b"\x08\x00\x00\x00\x00\x00\x00\x00not json").unwrap();
    start_fails(d.path(), &[], &["cannot read weights"]);
}

#[test]
fn a_tokenizer_from_another_model() {
    let d = common::copy_of("tiny-bert-st");
    fs::remove_file(d.path().join("vocab.txt")).unwrap();
    fs::copy(common::model_dir("all-MiniLM-L6-v2").join("tokenizer.json"), d.path().join("tokenizer.json")).unwrap();
    start_fails(d.path(), &[], &["does not belong to this model"]);
}

#[test]
fn a_corrupt_tokenizer() {
    let d = common::copy_of("tiny-bert-sentiment");
    fs::write(d.path().join("tokenizer.json"), b"{\"model\": 42}").unwrap();
    start_fails(d.path(), &[], &["invalid tokenizer", "tokenizer.json"]);
}

#[test]
fn an_unreadable_folder() {
    // Root reads through permission bits, so make the read itself fail: config.json is a folder.
    let d = common::copy_of("tiny-bert-sentiment");
    fs::remove_file(d.path().join("config.json")).unwrap();
    fs::create_dir(d.path().join("config.json")).unwrap();
    start_fails(d.path(), &[], &["config.json"]);
    // Without root, a folder with no permissions.
    use std::os::unix::fs::PermissionsExt;
    let d = common::copy_of("tiny-bert-sentiment");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(d.path()).is_err() {
        start_fails(d.path(), &[], &[]);
    }
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    start_fails(&common::model_dir("tiny-bert-sentiment"), &["--port", &port], &["cannot listen on", &port]);
}
