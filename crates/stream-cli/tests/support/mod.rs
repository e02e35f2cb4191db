//! Shared by the `ustream tail` tests of every source.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const USTREAM: &str = env!("CARGO_BIN_EXE_ustream");

/// Each stdout line parsed as JSON; a line that is not JSON fails the test.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Runs `ustream tail <args>` into `out_path` while the task `writer` makes the test's
/// writes, kills it with SIGKILL once it has printed `kill_after_bytes`, waits for `writer`,
/// then runs `ustream tail <args> --from <position of the last whole line> --idle-exit-ms
/// 5000` and returns every line delivered by the two runs together. `total` is how many lines
/// the writes make. The writer writes at least a quarter, then waits on the `Notify` it is
/// given until the kill is done: a tail slow to start must not find the writes all done.
pub async fn kill_mid_stream_and_resume<Fut>(
    args: &[&str],
    from: &str,
    out_path: &Path,
    kill_after_bytes: u64,
    total: usize,
    writer: impl FnOnce(std::sync::Arc<tokio::sync::Notify>) -> Fut,
) -> Vec<serde_json::Value>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let killed = std::sync::Arc::new(tokio::sync::Notify::new());
    let writer = tokio::spawn(writer(killed.clone()));
    let file = std::fs::File::create(out_path).expect("output file");
    let mut first = Command::new(USTREAM)
        .arg("tail")
        .args(args)
        .args(["--from", from])
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("run ustream");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(out_path).map_or(0, |m| m.len()) < kill_after_bytes {
        assert!(Instant::now() < deadline, "ustream printed too little");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    // A stored permit: the writer may reach its wait after this.
    killed.notify_one();
    writer.await.expect("writer");
    let text = String::from_utf8(std::fs::read(out_path).expect("read")).expect("utf8");
    let mut delivered: Vec<String> = text.split('\n').map(str::to_owned).collect();
    // The piece after the last newline (possibly a line cut by the kill) was never delivered.
    delivered.pop();
    assert!(
        delivered.len() < total,
        "the kill came too late to test anything"
    );
    let last: serde_json::Value =
        serde_json::from_str(delivered.last().expect("some lines")).expect("json");
    let resume = last["position"].as_str().expect("position").to_owned();
    let second = Command::new(USTREAM)
        .arg("tail")
        .args(args)
        .args(["--from", &resume, "--idle-exit-ms", "5000"])
        .output()
        .expect("run ustream again");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let _ = std::fs::remove_file(out_path);
    let mut lines: Vec<serde_json::Value> = delivered
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    lines.extend(json_lines(&second.stdout));
    lines
}

/// GET over a plain socket: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}
