//! Small helpers: paths, free ports, commands, waiting.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// `target/xtask/` under the workspace (or `CARGO_TARGET_DIR`).
pub fn state_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("xtask")
}

pub use stream_testkit::mariadb::{find_binary, free_port, is_root};

/// Runs a command to completion, failing with its output when it fails.
pub fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until `127.0.0.1:port` accepts connections, or `deadline` passes, or `alive()`
/// reports the process gone.
pub fn wait_for_port(port: u16, timeout: Duration, mut alive: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return Ok(());
        }
        if !alive() {
            bail!("the process exited before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on port {port} within {timeout:?}")
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    // Zombies (exited children not yet reaped) count as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `signal` (e.g. "TERM") to a pid.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The number after a flag of a command line (`--rate 5000`), or an error naming the flag.
pub fn flag_number<'a>(
    rest: &mut impl Iterator<Item = &'a &'a str>,
    name: &str,
    usage: &str,
) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let v = rest
        .next()
        .with_context(|| format!("{name} needs a value\n{usage}"))?;
    v.parse()
        .with_context(|| format!("{name}: `{v}` is not a number"))
}
