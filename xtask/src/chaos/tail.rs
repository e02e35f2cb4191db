//! `ustream tail` (and `Streamer`) processes the chaos command starts, watches, kills and
//! restarts, and the `mariadb` client sessions it writes with.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{find_binary, signal};

/// A running `ustream tail` writing its stdout to a file. Killed when dropped.
#[derive(Debug)]
pub(crate) struct Tail {
    child: Child,
    pub(crate) out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Tail {
    /// `ustream tail <args>`.
    pub(crate) fn start(ustream: &Path, args: &[String], out: &Path) -> Result<Self> {
        let mut all = vec!["tail".to_owned()];
        all.extend_from_slice(args);
        Self::spawn(ustream, &all, out)
    }

    /// Any streaming program (the `Streamer` example) run the same way.
    pub(crate) fn spawn(program: &Path, args: &[String], out: &Path) -> Result<Self> {
        let err = out.with_extension("stderr");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out).with_context(|| format!("{}", out.display()))?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            child,
            out: out.to_owned(),
            err,
            status: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Bytes printed so far.
    pub(crate) fn printed(&self) -> u64 {
        std::fs::metadata(&self.out).map_or(0, |m| m.len())
    }

    /// Its exit status, once it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The last lines of its stderr, for messages.
    pub(crate) fn stderr_tail(&self) -> String {
        crate::util::tail(&self.err, 5).replace('\n', " | ")
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub(crate) fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) fn stop(&mut self, within: Duration) -> Result<ExitStatus> {
        if self.exited().is_none() {
            signal(self.pid(), "TERM");
        }
        self.wait(within)
    }

    /// Waits for it to exit on its own.
    pub(crate) fn wait(&mut self, within: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "ustream tail did not exit within {within:?}; stderr: {}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `done` holds, checking every few milliseconds; fails if the tail exits first
    /// or `within` passes.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&mut Self) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if done(self)? {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                bail!(
                    "ustream tail exited ({status}) while waiting for {what}; stderr: {}",
                    self.stderr_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no {what} within {within:?}; ustream stderr: {}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Runs `ustream tail <args>` to its own end (`--limit`, `--idle-exit-ms`): an uninterrupted
/// read for the others to be compared with.
pub(crate) fn read_uninterrupted(ustream: &Path, args: &[String], out: &Path) -> Result<()> {
    let mut run = Tail::start(ustream, args, out)?;
    let status = run.wait(Duration::from_secs(3600))?;
    if !status.success() {
        bail!(
            "the uninterrupted read failed ({status}): {}",
            run.stderr_tail()
        );
    }
    Ok(())
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the lines a file gains, as they come.
#[derive(Debug)]
pub(crate) struct Follower {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub(crate) lines: u64,
}

impl Follower {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
            lines: 0,
        }
    }

    /// Calls `each` with every whole line added since the last call; returns whether any
    /// call returned true.
    pub(crate) fn poll(&mut self, mut each: impl FnMut(&str) -> bool) -> Result<bool> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(_) => return Ok(false),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let mut hit = false;
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.partial[start..start + end]);
            hit |= each(&line);
            self.lines += 1;
            start += end + 1;
        }
        self.partial.drain(..start);
        Ok(hit)
    }
}

/// Runs SQL over TCP as the workload's user through the `mariadb` client (a restart of the
/// server does not move its port, unlike the socket `MariaDb::sql` uses through `&self`).
pub(crate) fn sql_tcp(url: &str, sql: &str) -> Result<String> {
    let client = find_binary(&["mariadb"]).context("the mariadb client is not installed")?;
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let port = rest.rsplit_once(':').map_or("3306", |(_, p)| p);
    let mut child = Command::new(client)
        .args(["--no-defaults", "--protocol=TCP", "-h127.0.0.1", "--batch"])
        .args(["--skip-column-names", "--connect-timeout=5"])
        .arg(format!("-P{port}"))
        .arg(format!("-u{}", stream_testkit::mariadb::USER))
        .arg(format!("-p{}", stream_testkit::mariadb::PASSWORD))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the mariadb client")?;
    let mut stdin = child.stdin.take().context("client stdin")?;
    let input = sql.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!(
            "mariadb client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `binlog:<file>:<offset>+0` of the server's binlog end now.
pub(crate) fn binlog_end(url: &str) -> Result<String> {
    let status = sql_tcp(url, "SHOW MASTER STATUS")?;
    let mut fields = status.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(file), Some(pos)) => Ok(format!("binlog:{file}:{pos}+0")),
        _ => bail!("SHOW MASTER STATUS printed `{}`", status.trim()),
    }
}

/// Peak resident memory of a running process so far, in KB (`VmHWM`).
pub(crate) fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
