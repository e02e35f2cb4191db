//! `ustream tail` as a background process printing into a file, for the tests that inject
//! faults while it runs and watch how far it got.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{USTREAM, json_lines};
use serde_json::Value;
use stream_testkit::Server;
use stream_testkit::proxy::{Fault, FaultProxy};

/// A running `ustream tail <args>`; killed if the test ends first.
pub struct Tail {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Tail {
    pub fn start(args: &[&str], out: PathBuf) -> Self {
        let err = out.with_extension("stderr");
        let child = Command::new(USTREAM)
            .arg("tail")
            .args(args)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("run ustream");
        Self { child, out, err }
    }

    pub fn lines_printed(&self) -> usize {
        std::fs::read(&self.out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.err.clone()
    }

    pub async fn wait_for_lines(&self, at_least: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.lines_printed() < at_least {
            assert!(
                Instant::now() < deadline,
                "ustream printed {} of {at_least} lines within {within:?}; stderr: {}",
                self.lines_printed(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (`-INT`, `-TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// How many stderr lines contain `text`.
    pub fn stderr_lines_with(&self, text: &str) -> usize {
        self.stderr().lines().filter(|l| l.contains(text)).count()
    }

    /// Waits for the process to exit: its status, or `None` when it is still running after
    /// `within`.
    pub async fn exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the exit at `--limit`: the lines printed, or `None` when it is still running
    /// after `within` (then it is killed).
    pub async fn finish(mut self, within: Duration) -> Option<Vec<Value>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "ustream failed: {}", self.stderr());
                let lines = json_lines(&std::fs::read(&self.out).expect("output"));
                let _ = std::fs::remove_file(&self.out);
                let _ = std::fs::remove_file(&self.err);
                return Some(lines);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file for a test's output, in the temp dir.
pub fn out_path(name: &str, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-{what}.jsonl"))
}

/// Waits until `done` holds, or fails naming `what`.
pub async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fault proxy in front of a shared test server, and the server's URL through it.
pub async fn proxy_to(server: Server) -> (FaultProxy, String) {
    proxy_in_front_of(&server.url()).await
}

/// A fault proxy in front of the server of `url`, and `url` through it.
pub async fn proxy_in_front_of(url: &str) -> (FaultProxy, String) {
    let host_port = stream_testkit::host_port(url);
    let upstream = tokio::net::lookup_host(&host_port)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    let url = url.replacen(&host_port, &proxy.addr().to_string(), 1);
    (proxy, url)
}

/// A network fault a test injects between a tail and its server.
#[derive(Debug, Clone, Copy)]
pub enum NetFault {
    /// RST of the open connection and of reconnect attempts, then connections work again.
    Reset,
    /// Nothing forwarded until the writer has finished; then everything held arrives.
    Pause,
    /// The open connection goes silent (no FIN, no RST); new connections work.
    HalfOpen,
}

/// Holds a writer after the first part of its changes until the fault is in place, so the
/// rest is written across the fault however long the tail took to start reading (a slow start
/// would otherwise read a finished writer's backlog in one batch, before any fault).
#[derive(Clone, Default)]
pub struct FaultGate(std::sync::Arc<tokio::sync::Notify>);

impl FaultGate {
    /// Waits until the fault is in place.
    pub async fn wait(&self) {
        self.0.notified().await;
    }

    fn open(&self) {
        // A stored permit: the writer may reach `wait` after this.
        self.0.notify_one();
    }
}

/// Runs `ustream tail <args>` (through `proxy`, to `--limit total`) while the task `writer`
/// makes writes; once a quarter of the lines are printed, injects `fault`. The writer must
/// write at least that quarter, then `wait` on its gate before the rest. Returns the lines
/// printed, or why not all of them came within `within` of the fault; and what the writer
/// returned.
pub async fn tail_through_fault<W, Fut>(
    proxy: &FaultProxy,
    args: &[&str],
    out: PathBuf,
    total: usize,
    writer: impl FnOnce(FaultGate) -> Fut,
    fault: NetFault,
    within: Duration,
) -> (Result<Vec<Value>, String>, W)
where
    W: Send + 'static,
    Fut: std::future::Future<Output = W> + Send + 'static,
{
    let gate = FaultGate::default();
    let writer = tokio::spawn(writer(gate.clone()));
    let tail = Tail::start(args, out);
    tail.wait_for_lines(total / 4, Duration::from_secs(30))
        .await;
    match fault {
        NetFault::Reset => {
            let printed = tail.lines_printed();
            proxy.set(Fault::Reset);
            gate.open();
            // The open connection and at least one reconnect attempt are refused.
            wait_for("two resets", Duration::from_secs(10), || {
                proxy.resets() >= 2
            })
            .await;
            assert!(
                printed < total,
                "the reset came after the last line: nothing tested"
            );
            let before = proxy.accepted();
            proxy.set(Fault::Pass);
            wait_for("a reconnect", Duration::from_secs(10), || {
                proxy.accepted() > before
            })
            .await;
        }
        NetFault::Pause => {
            proxy.set(Fault::Pause);
            gate.open();
            // Held until every write is done: the whole rest arrives after the pause.
            wait_for("the writer to finish", Duration::from_secs(30), || {
                writer.is_finished()
            })
            .await;
            assert!(tail.lines_printed() < total, "nothing held by the pause");
            proxy.set(Fault::Pass);
        }
        NetFault::HalfOpen => {
            proxy.set(Fault::Blackhole);
            proxy.set(Fault::Pass);
            gate.open();
        }
    }
    let connections = proxy.accepted();
    let written = writer.await.expect("writer");
    let stderr_path = tail.stderr_path();
    let printed = tail.finish(within).await.ok_or_else(|| {
        format!(
            "ustream did not print all {total} changes within {within:?} after the fault; \
             connections through the proxy: {connections} then, {} now; stderr: {}",
            proxy.accepted(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    });
    (printed, written)
}
