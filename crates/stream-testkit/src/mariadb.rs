//! A MariaDB server of a test's own, for what a shared server cannot do: restart it, kill it,
//! purge its binlog, run it without a binlog. `cargo xtask` starts its servers with the same code.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `names` found on PATH or in the usual sbin/lib directories.
pub fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    // PostgreSQL keeps its server binaries per major version.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        versions.reverse();
        dirs.extend(versions);
    }
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A loopback port that was free a moment ago, for a server to bind.
///
/// Chosen below the kernel's ephemeral range when it can be: the kernel hands ports of that
/// range to every `bind(0)` and outgoing connection, so a port taken from it may be given to
/// someone else before the server binds it, or while the server restarts.
pub fn free_port() -> std::io::Result<u16> {
    const SPAN: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > 1_024 + SPAN {
        let first = ephemeral_low - SPAN;
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(16)
            | 1;
        for _ in 0..64 {
            // xorshift: any spread will do, the bind below decides.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let Ok(port) = u16::try_from(first + seed % SPAN) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn binary(name: &str) -> Result<PathBuf, String> {
    find_binary(&[name]).ok_or_else(|| {
        format!("`{name}` not found: install MariaDB (`apt-get install mariadb-server`) or run `cargo xtask test`")
    })
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The user every throwaway MariaDB has (all privileges, replication, GRANT OPTION).
pub const USER: &str = "ustream";
/// Its password.
pub const PASSWORD: &str = "ustream";

/// A throwaway MariaDB: binlog in ROW format with full row images unless told otherwise.
#[derive(Debug)]
pub struct MariaDb {
    dir: PathBuf,
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    /// Stop the server and remove its data when dropped.
    owned: bool,
}

impl MariaDb {
    /// Initialises a data dir in `dir`, starts the server on a free port and creates the user.
    /// `extra_args` go to `mariadbd` (`--skip-log-bin` for a server without binlog).
    pub fn start(dir: &Path, extra_args: &[&str]) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut install = Command::new(binary("mariadb-install-db")?);
        install.args([
            "--no-defaults",
            &format!("--datadir={}", dir.join("data").display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        if is_root() {
            install.arg("--user=root");
        }
        {
            // Concurrent bootstraps have been seen to fail; one at a time, and a retry.
            static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(first) = run(&mut install, "mariadb-install-db") {
                let _ = std::fs::remove_dir_all(dir.join("data"));
                run(&mut install, "mariadb-install-db")
                    .map_err(|second| format!("{second}\n(first attempt: {first})"))?;
            }
        }
        let mut server = Self {
            dir: dir.to_owned(),
            port: free_port().map_err(|e| format!("no free port: {e}"))?,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            owned: true,
        };
        // The port was free when picked; another process may bind it before mariadbd does.
        for attempt in 1.. {
            match server.spawn() {
                Ok(()) => break,
                Err(e) if attempt < 3 && e.contains("Address already in use") => {
                    server.port = free_port().map_err(|e| format!("no free port: {e}"))?;
                }
                Err(e) => return Err(e),
            }
        }
        server.sql(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;"
        ))?;
        Ok(server)
    }

    /// A fresh temp dir for [`MariaDb::start`].
    pub fn temp_dir(what: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        std::env::temp_dir().join(format!("ustream-{what}-{}-{nanos}", std::process::id()))
    }

    fn args(&self) -> Vec<String> {
        let d = &self.dir;
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", d.join("data").display()),
            format!("--socket={}", d.join("mysqld.sock").display()),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            // A private temp dir: a server starting removes every `#sql*` file of its tmpdir
            // (leftovers of its own crash), so with a shared /tmp a test's own server deleted
            // the shared server's temporary tables under it ("Error on delete of
            // '/tmp/#sql-temptable-...'"), which can take that server down.
            format!("--tmpdir={}", d.join("tmp").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            "--server-id=1".to_owned(),
            format!("--log-bin={}", d.join("data/mysql-bin").display()),
            "--binlog-format=ROW".to_owned(),
            "--binlog-row-image=FULL".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--max-allowed-packet=256M".to_owned(),
            "--innodb-buffer-pool-size=64M".to_owned(),
            "--innodb-flush-log-at-trx-commit=2".to_owned(),
            "--sync-binlog=0".to_owned(),
            format!("--log-error={}", d.join("error.log").display()),
        ];
        if is_root() {
            args.insert(1, "--user=root".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(self.dir.join("tmp"))
            .map_err(|e| format!("creating {}: {e}", self.dir.join("tmp").display()))?;
        // A killed server leaves its socket behind; readiness waits for the new one.
        let _ = std::fs::remove_file(self.dir.join("mysqld.sock"));
        let log =
            std::fs::File::create(self.dir.join("mariadbd.out")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary("mariadbd")?);
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        {
            use std::os::unix::process::CommandExt as _;
            // Its own process group: a Ctrl-C meant for us must not kill the server mid-write.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting mariadbd: {e}"))?;
        let started = Instant::now();
        loop {
            // Ready once both the socket (which `sql` uses) and the port answer: mariadbd
            // listens on the port a moment before it creates the socket, and a port taken by
            // another process answers although this server is about to give up on it.
            if std::os::unix::net::UnixStream::connect(self.dir.join("mysqld.sock")).is_ok()
                && TcpStream::connect_timeout(
                    &([127, 0, 0, 1], self.port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "mariadbd exited ({status}): {}",
                        self.error_log_tail()
                    ));
                }
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mariadbd exited ({status}): {}",
                    self.error_log_tail()
                ));
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err(format!(
                    "mariadbd did not listen within 60 s: {}",
                    self.error_log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// `mysql://ustream:ustream@127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs SQL as root over the socket (through stdin, so it may be long); returns the
    /// tab-separated output.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        use std::io::Write as _;
        let mut child = Command::new(binary("mariadb")?)
            .args([
                "--no-defaults",
                "-uroot",
                &format!("--socket={}", self.dir.join("mysqld.sock").display()),
                "--batch",
                "--skip-column-names",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("mariadb client: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("mariadb client: no stdin")?;
        let input = sql.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("mariadb client: {e}"))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(format!(
                "mariadb client failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server cleanly (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM, then waits up to 30 s for a clean exit before SIGKILL.
pub(crate) fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl MariaDb {
    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// Leaves the server running after this value is dropped (for `cargo xtask db up`);
    /// returns its pid.
    pub fn detach(mut self) -> Option<u32> {
        self.owned = false;
        self.child.take().map(|c| c.id())
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if self.owned {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
