//! A throwaway MongoDB stand-in (`secantusdb`) of a test's own, for what the shared server must
//! not suffer: restarts, oplog pruning, special flags.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mariadb::{MariaDb, free_port};

/// The launcher: `STREAM_TEST_SECANTUS`, else the venv `cargo xtask` installs.
pub fn launcher() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("STREAM_TEST_SECANTUS") {
        return Ok(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.xtask/secantus-venv/bin/secantusd-py");
    if venv.is_file() {
        Ok(venv)
    } else {
        Err(format!(
            "the MongoDB stand-in is not installed ({} missing): run the tests with \
             `cargo xtask test` (it installs secantusdb) or set STREAM_TEST_SECANTUS",
            venv.display()
        ))
    }
}

/// One stand-in server with its data on disk, so that it can be restarted.
#[derive(Debug)]
pub struct Secantus {
    dir: PathBuf,
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Secantus {
    /// Starts a server on a free port; `extra_args` go to `secantusd-py`.
    pub fn start(extra_args: &[&str]) -> Result<Self, String> {
        let dir = MariaDb::temp_dir("secantus");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut server = Self {
            dir,
            port: free_port().map_err(|e| format!("no free port: {e}"))?,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("secantus.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let err_log = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(launcher()?)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("data"))
            .args(["--enable-test-commands", "--noop-heartbeat-seconds", "1"])
            .args(&self.extra_args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("starting secantusd-py: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.join("secantus.log")).unwrap_or_default();
                return Err(format!("secantusd-py exited with {status}: {log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "secantusd-py did not listen on {} within 60 s",
            self.port
        ))
    }

    /// `mongodb://127.0.0.1:<port>/?directConnection=true`
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly (SIGTERM, then waits up to 30 s).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::mariadb::terminate(child);
        }
    }

    /// The `secantusd-py` flags of the next [`Secantus::start_again`] (e.g. a short oplog).
    pub fn set_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Starts it again on the same port and data (after [`Secantus::stop`] or
    /// [`Secantus::kill`]).
    pub fn start_again(&mut self) -> Result<(), String> {
        self.spawn()
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
