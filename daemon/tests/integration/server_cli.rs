//! The `shard-server` binary built by Cargo: flags, the start-up line on stderr, port 0,
//! graceful exit on SIGTERM, and refusing to serve a network address without tokens.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

/// Upper bound for the binary to start or stop; generous for a loaded 2-core CI machine.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

fn shard_server(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shard-server"));
    let _ = command
        .args(args)
        .env("SHARDD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads stderr until the `listening on` line and returns the URL it names.
async fn wait_for_url(lines: &mut tokio::io::Lines<BufReader<ChildStderr>>) -> String {
    let find = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("shard-server listening on ") {
                return url.to_owned();
            }
        }
        panic!("shard-server exited before listening");
    };
    tokio::time::timeout(PROCESS_TIMEOUT, find)
        .await
        .expect("shard-server did not start")
}

async fn exit_code(child: &mut Child) -> Option<i32> {
    let status = tokio::time::timeout(PROCESS_TIMEOUT, child.wait()).await;
    status.expect("shard-server did not exit").unwrap().code()
}

#[tokio::test]
async fn serves_on_port_zero_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--storage",
        storage.to_str().unwrap(),
    ];
    let mut child = shard_server(&args).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = wait_for_url(&mut lines).await;
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let health = reqwest::get(format!("{url}/v1/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        storage.join("objects").is_dir(),
        "the storage directory is created at start"
    );

    let pid = Pid::from_raw(child.id().unwrap().try_into().unwrap()).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    assert_eq!(exit_code(&mut child).await, Some(0));
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "{rest:#?}"
    );
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:#?}");
}

#[tokio::test]
async fn refuses_a_network_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    let args = [
        "--listen",
        "0.0.0.0:0",
        "--storage",
        storage.to_str().unwrap(),
    ];
    let output = tokio::time::timeout(PROCESS_TIMEOUT, shard_server(&args).output())
        .await
        .expect("shard-server did not exit")
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("shard-server: refusing to serve 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(stderr.contains("--token-file"), "{stderr}");
}

#[tokio::test]
async fn reports_a_bad_token_file_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-tokens");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        missing.to_str().unwrap(),
    ];
    let output = shard_server(&args)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("shard-server: failed to read the token file: "),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-tokens"), "{stderr}");
}

#[tokio::test]
async fn help_documents_the_flags() {
    let output = shard_server(&["--help"])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen <ADDR>",
        "127.0.0.1:8000",
        "--storage",
        "./shard-data",
        "s3://",
        "--token-file <FILE>",
        "--insecure-open",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
