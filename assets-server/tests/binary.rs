//! The `isoplane-assets` binary: a bad configuration stops it before it opens anything,
//! with every problem listed; a good one serves on the address it logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_bad_configuration_is_reported_whole_before_anything_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("assets.toml");
    std::fs::write(&config, "workspace = \"has spaces\"\n[store]\nkind = \"s3\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_isoplane-assets"))
        .arg(&config)
        .env("ISOPLANE_ASSETS_DATA_DIR", dir.path().join("data"))
        .env("ISOPLANE_ASSETS_MAX_UPLOAD_BYTES", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ISOPLANE_ASSETS_MAX_UPLOAD_BYTES"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_isoplane-assets"))
        .arg(&config)
        .env("ISOPLANE_ASSETS_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for problem in ["token_secret", "workspace", "store.s3.bucket"] {
        assert!(stderr.contains(problem), "{problem} missing from: {stderr}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn the_binary_serves_on_the_address_it_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isoplane-assets"))
        .env("ISOPLANE_ASSETS_LISTEN", "127.0.0.1:0")
        .env("ISOPLANE_ASSETS_TOKEN_SECRET", "binary-test-secret-0123")
        .env("ISOPLANE_ASSETS_DATA_DIR", dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout.lines().map_while(Result::ok).find(|line| line.contains("listening on http://"));
    let address = line
        .as_deref()
        .and_then(|line| line.split("http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    let answer = address.as_ref().map(|address| {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        std::io::Write::write_all(&mut socket, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut socket, &mut text).unwrap();
        text
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let answer = answer.unwrap_or_else(|| panic!("no address logged: {line:?}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(dir.path().join("data/assets.db").exists(), "the SQLite file is in the data dir");
}
