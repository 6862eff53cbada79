//! `hegpu serve` and `hegpu client` as processes: the client classifies through the server in
//! the latency packing, and the server stops on SIGTERM after its requests.

mod common;

use common::cli::hegpu_ok;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_client_classifies_through_a_served_model_and_the_server_stops_on_sigterm() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_hegpu"))
        .args(["serve", "--listen", "127.0.0.1:0", "--device", "cpu"])
        .args(["--packing", "latency", "--model", "cryptonets-5"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("serving cryptonets-5 (latency packing"),
        "{first}"
    );
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let out = hegpu_ok(&[
        "client",
        "--server",
        &url,
        "--images",
        "3",
        "--model",
        "cryptonets-5",
    ]);
    assert!(out.contains("accuracy: 3 of 3 images"), "{out}");
    assert!(out.contains("requests: 3"), "{out}");
    // Without the model a latency client cannot lay its images out: a clear error.
    let o = common::cli::hegpu(&["client", "--server", &url, "--images", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model"));
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.wait().unwrap().success());
    assert_eq!(lines.next().unwrap().unwrap(), "stopped");
}

#[test]
fn serve_and_client_have_help_and_refuse_bad_options() {
    for command in ["serve", "client"] {
        let out = hegpu_ok(&[command, "--help"]);
        assert!(out.contains("Usage: hegpu"), "{out}");
    }
    common::cli::assert_refused(&["serve", "--queue", "many"]);
    common::cli::assert_refused(&["client", "--server", "http://127.0.0.1:9", "--images", "1"]);
}
