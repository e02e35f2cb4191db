//! Throwaway servers for tests and the demo: MariaDB, PostgreSQL, Redis, NATS, MongoDB stand-in.
//!
//! Each runs as a detached process on a free loopback port with its data in one temp dir.
//! `db up` writes the URLs to `target/xtask/servers.env` and the pids to
//! `target/xtask/servers.state`, so `db down` (or a later `xtask test`) finds them. A URL that
//! is already in the environment (say a real MySQL 8 in `STREAM_TEST_MYSQL_URL`) is used
//! instead of starting that server.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use stream_testkit::mariadb::MariaDb;

use crate::util::{
    find_binary, free_port, is_root, pid_alive, run_checked, signal, state_dir, tail,
    wait_for_port, workspace_root,
};

/// The servers `db up` knows, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MariaDb,
    Postgres,
    Redis,
    Nats,
    Mongo,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::MariaDb,
        Kind::Postgres,
        Kind::Redis,
        Kind::Nats,
        Kind::Mongo,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Kind::MariaDb => "mysql",
            Kind::Postgres => "pg",
            Kind::Redis => "redis",
            Kind::Nats => "nats",
            Kind::Mongo => "mongo",
        }
    }

    /// The log a throwaway server of this kind writes under the fleet's data dir.
    pub fn log_file(self, data_dir: &Path) -> PathBuf {
        match self {
            Kind::MariaDb => data_dir.join("mariadb/error.log"),
            Kind::Postgres => data_dir.join("postgres/postgres.log"),
            Kind::Redis => data_dir.join("redis/redis.log"),
            Kind::Nats => data_dir.join("nats/nats.log"),
            Kind::Mongo => data_dir.join("mongo/secantus.log"),
        }
    }

    pub fn env_var(self) -> &'static str {
        match self {
            Kind::MariaDb => "STREAM_TEST_MYSQL_URL",
            Kind::Postgres => "STREAM_TEST_PG_URL",
            Kind::Redis => "STREAM_TEST_REDIS_URL",
            Kind::Nats => "STREAM_TEST_NATS_URL",
            Kind::Mongo => "STREAM_TEST_MONGO_URL",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::MariaDb => "MariaDB",
            Kind::Postgres => "PostgreSQL",
            Kind::Redis => "Redis",
            Kind::Nats => "NATS JetStream",
            Kind::Mongo => "MongoDB stand-in (secantusdb)",
        }
    }

    fn from_key(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// How the server shuts down quickly and cleanly.
    fn stop_signal(self) -> &'static str {
        match self {
            // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client.
            Kind::Postgres => "INT",
            _ => "TERM",
        }
    }

    /// Debian package that provides the server.
    fn package(self) -> Option<&'static str> {
        match self {
            Kind::MariaDb => Some("mariadb-server"),
            Kind::Postgres => Some("postgresql"),
            Kind::Redis => Some("redis-server"),
            Kind::Nats => Some("nats-server"),
            Kind::Mongo => None,
        }
    }

    fn binaries(self) -> &'static [&'static str] {
        match self {
            Kind::MariaDb => &["mariadbd", "mariadb-install-db", "mariadb"],
            Kind::Postgres => &["postgres", "initdb"],
            Kind::Redis => &["redis-server"],
            Kind::Nats => &["nats-server"],
            Kind::Mongo => &[],
        }
    }
}

/// One server: started here (with a pid) or given by the environment.
#[derive(Debug, Clone)]
pub struct Server {
    pub kind: Kind,
    pub url: String,
    /// `None` when the URL came from the environment.
    pub pid: Option<u32>,
}

/// Servers that are up, and the temp dir holding their data.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub servers: Vec<Server>,
    pub data_dir: Option<PathBuf>,
}

impl Fleet {
    /// `(VAR, url)` for every server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.servers
            .iter()
            .map(|s| (s.kind.env_var(), s.url.clone()))
            .collect()
    }
}

impl Fleet {
    /// After a failed run: which throwaway servers died, and the end of every server's log,
    /// so a CI failure caused by a server (crash, OOM kill) says so instead of showing only
    /// the tests' `connection refused`.
    pub fn post_mortem(&self) {
        let Some(dir) = &self.data_dir else { return };
        for s in &self.servers {
            let Some(pid) = s.pid else { continue };
            let state = if pid_alive(pid) {
                "still running"
            } else {
                "DIED during the run"
            };
            let log = s.kind.log_file(dir);
            eprintln!(
                "\n==== {} (pid {pid}) {state}; last lines of {} ====\n{}",
                s.kind.label(),
                log.display(),
                tail(&log, 40)
            );
        }
    }
}

fn env_file() -> PathBuf {
    state_dir().join("servers.env")
}

fn state_file() -> PathBuf {
    state_dir().join("servers.state")
}

pub fn up_command(args: &[&str]) -> Result<()> {
    let kinds = match args {
        [] => Kind::ALL.to_vec(),
        ["--only", list] => list
            .split(',')
            .map(|k| {
                Kind::from_key(k.trim()).with_context(|| {
                    format!("unknown server `{k}` (expected mysql, pg, redis, nats, mongo)")
                })
            })
            .collect::<Result<_>>()?,
        _ => bail!("usage: cargo xtask db up [--only mysql,pg,redis,nats,mongo]"),
    };
    if let Some(fleet) = load_running()? {
        eprintln!("servers are already up (stop them with `cargo xtask db down`):");
        print_fleet(&fleet);
        return Ok(());
    }
    let fleet = up(&kinds)?;
    print_fleet(&fleet);
    eprintln!(
        "\nURLs written to {}; load them with `set -a; . {}; set +a`",
        env_file().display(),
        env_file().display()
    );
    Ok(())
}

pub fn down_command() -> Result<()> {
    match load_state()? {
        Some(fleet) => {
            down(&fleet);
            eprintln!("servers stopped");
        }
        None => eprintln!("no servers are up"),
    }
    Ok(())
}

pub fn status_command() -> Result<()> {
    match load_state()? {
        Some(fleet) => print_fleet(&fleet),
        None => eprintln!("no servers are up (start them with `cargo xtask db up`)"),
    }
    Ok(())
}

fn print_fleet(fleet: &Fleet) {
    for s in &fleet.servers {
        let state = match s.pid {
            Some(pid) if pid_alive(pid) => format!("running, pid {pid}"),
            Some(pid) => format!("NOT RUNNING (pid {pid} gone)"),
            None => "from the environment".to_owned(),
        };
        eprintln!(
            "  {:<32} {:<28} {}",
            s.kind.label(),
            state,
            s.kind.env_var()
        );
        println!("{}={}", s.kind.env_var(), s.url);
    }
}

/// The fleet recorded by an earlier `db up`, if all its servers still run.
pub fn load_running() -> Result<Option<Fleet>> {
    Ok(load_state()?.filter(|f| f.servers.iter().all(|s| s.pid.is_none_or(pid_alive))))
}

fn load_state() -> Result<Option<Fleet>> {
    let text = match std::fs::read_to_string(state_file()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the server state file"),
    };
    let mut fleet = Fleet {
        servers: Vec::new(),
        data_dir: None,
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["data", dir] => fleet.data_dir = Some(PathBuf::from(dir)),
            [key, pid, url] => {
                let kind = Kind::from_key(key)
                    .with_context(|| format!("corrupt state file {}", state_file().display()))?;
                fleet.servers.push(Server {
                    kind,
                    url: (*url).to_owned(),
                    pid: pid.parse().ok(),
                });
            }
            _ => bail!("corrupt state file {}: `{line}`", state_file().display()),
        }
    }
    Ok(Some(fleet))
}

fn save_state(fleet: &Fleet) -> Result<()> {
    std::fs::create_dir_all(state_dir())?;
    let mut state = String::new();
    if let Some(dir) = &fleet.data_dir {
        state.push_str(&format!("data\t{}\n", dir.display()));
    }
    let mut env = String::new();
    for s in &fleet.servers {
        let pid = s.pid.map_or("-".to_owned(), |p| p.to_string());
        state.push_str(&format!("{}\t{pid}\t{}\n", s.kind.key(), s.url));
        env.push_str(&format!("{}={}\n", s.kind.env_var(), s.url));
    }
    std::fs::write(state_file(), state)?;
    std::fs::write(env_file(), env)?;
    Ok(())
}

/// Starts the servers of `kinds` (or takes their URLs from the environment). On any failure,
/// stops what it started and reports which server failed and why.
pub fn up(kinds: &[Kind]) -> Result<Fleet> {
    let to_start: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| std::env::var_os(k.env_var()).is_none())
        .collect();
    install_missing(&to_start)?;
    let data_dir = unique_temp_dir("servers");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut fleet = Fleet {
        servers: Vec::new(),
        data_dir: Some(data_dir.clone()),
    };
    for &kind in kinds {
        if let Ok(url) = std::env::var(kind.env_var()) {
            eprintln!(
                "xtask: {} from the environment ({})",
                kind.label(),
                kind.env_var()
            );
            fleet.servers.push(Server {
                kind,
                url,
                pid: None,
            });
            continue;
        }
        let started = Instant::now();
        match start(kind, &data_dir) {
            Ok(server) => {
                eprintln!(
                    "xtask: {} up on {} in {:.1} s",
                    kind.label(),
                    endpoint(&server.url),
                    started.elapsed().as_secs_f64()
                );
                fleet.servers.push(server);
                save_state(&fleet)?;
            }
            Err(e) => {
                down(&fleet);
                return Err(e.context(format!("could not start {}", kind.label())));
            }
        }
    }
    save_state(&fleet)?;
    Ok(fleet)
}

/// `scheme://user:pw@host:port/x` -> `host:port`
fn endpoint(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// Stops every server the fleet started and removes its data.
pub fn down(fleet: &Fleet) {
    for s in fleet.servers.iter().rev() {
        if let Some(pid) = s.pid {
            stop_pid(pid, s.kind.stop_signal());
        }
    }
    if let Some(dir) = &fleet.data_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(state_file());
    let _ = std::fs::remove_file(env_file());
}

fn stop_pid(pid: u32, sig: &str) {
    if !pid_alive(pid) {
        return;
    }
    signal(pid, sig);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if pid_alive(pid) {
        eprintln!("xtask: pid {pid} ignored SIG{sig} for 20 s; killing it");
        signal(pid, "KILL");
    }
}

fn install_missing(kinds: &[Kind]) -> Result<()> {
    let packages: Vec<&str> = kinds
        .iter()
        .filter(|k| k.binaries().iter().any(|b| find_binary(&[b]).is_none()))
        .filter_map(|k| k.package())
        .collect();
    if packages.is_empty() {
        return Ok(());
    }
    if !is_root() || find_binary(&["apt-get"]).is_none() {
        bail!(
            "missing server binaries; install the Debian packages with\n  sudo apt-get install -y {}\n\
             or point the STREAM_TEST_*_URL variables at servers you run yourself",
            packages.join(" ")
        );
    }
    eprintln!(
        "xtask: installing {} with apt-get (once per machine)...",
        packages.join(" ")
    );
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let out = install().context("running apt-get")?;
    if !out.status.success() {
        eprintln!("xtask: apt-get install failed; refreshing the package lists and retrying");
        run_checked(
            Command::new("apt-get").args(["update", "-q"]),
            "apt-get update",
        )?;
        let out = install().context("running apt-get")?;
        if !out.status.success() {
            bail!(
                "apt-get install {} failed:\n{}",
                packages.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// A fresh directory name under the system temp dir.
pub fn unique_temp_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("ustream-{what}-{}-{nanos}", std::process::id()))
}

fn binary(name: &str) -> Result<PathBuf> {
    find_binary(&[name]).with_context(|| format!("`{name}` not found on this machine"))
}

/// Spawns a server detached from our process group, logging to `log`.
fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))
}

fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<()> {
    wait_for_port(port, Duration::from_secs(60), || {
        matches!(child.try_wait(), Ok(None))
    })
    .with_context(|| format!("last lines of {}:\n{}", log.display(), tail(log, 20)))
}

fn start(kind: Kind, root: &Path) -> Result<Server> {
    match kind {
        Kind::MariaDb => start_mariadb(root),
        Kind::Postgres => start_postgres(root),
        Kind::Redis => start_redis(root),
        Kind::Nats => start_nats(root),
        Kind::Mongo => start_mongo(root),
    }
}

fn start_mariadb(root: &Path) -> Result<Server> {
    let server = MariaDb::start(&root.join("mariadb"), &[]).map_err(anyhow::Error::msg)?;
    let url = server.url();
    Ok(Server {
        kind: Kind::MariaDb,
        url,
        pid: server.detach(),
    })
}

fn start_postgres(root: &Path) -> Result<Server> {
    let dir = root.join("postgres");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let as_root = is_root();
    // initdb refuses to run as root: run PostgreSQL as the `postgres` user.
    let wrap = |program: PathBuf| -> Command {
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if as_root {
        run_checked(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
            "chown of the PostgreSQL data dir to postgres",
        )
        .context("is the `postgres` user missing? `apt-get install postgresql` creates it")?;
    }
    let data = dir.join("data");
    run_checked(
        wrap(binary("initdb")?).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]),
        "initdb",
    )?;
    let log = dir.join("postgres.log");
    let mut cmd = wrap(binary("postgres")?);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "wal_level=logical",
        ]);
    let mut child = spawn(&mut cmd, &log)?;
    wait_ready(&mut child, port, &log)?;
    // The postmaster's own pid (runuser is only its parent).
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(child.id());
    Ok(Server {
        kind: Kind::Postgres,
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        pid: Some(pid),
    })
}

fn start_redis(root: &Path) -> Result<Server> {
    let dir = root.join("redis");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = dir.join("redis.log");
    let mut cmd = Command::new(binary("redis-server")?);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .args(["--appendonly", "no", "--daemonize", "no", "--dir"])
    .arg(&dir);
    let mut child = spawn(&mut cmd, &log)?;
    wait_ready(&mut child, port, &log)?;
    Ok(Server {
        kind: Kind::Redis,
        url: format!("redis://127.0.0.1:{port}"),
        pid: Some(child.id()),
    })
}

fn start_nats(root: &Path) -> Result<Server> {
    let dir = root.join("nats");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = dir.join("nats.log");
    let mut cmd = Command::new(binary("nats-server")?);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"));
    let mut child = spawn(&mut cmd, &log)?;
    wait_ready(&mut child, port, &log)?;
    Ok(Server {
        kind: Kind::Nats,
        url: format!("nats://127.0.0.1:{port}"),
        pid: Some(child.id()),
    })
}

const SECANTUS: &str = "secantusdb==0.7.0b3";

/// The stand-in's launcher, in its own venv under `.xtask/` (installed on first use).
pub fn secantus_launcher() -> Result<PathBuf> {
    let venv = workspace_root().join(".xtask").join("secantus-venv");
    let launcher = venv.join("bin").join("secantusd-py");
    if launcher.is_file() {
        return Ok(launcher);
    }
    let python = find_binary(&["python3.11", "python3"]).context(
        "python3 (3.11) is needed for the MongoDB stand-in; install it or set STREAM_TEST_MONGO_URL",
    )?;
    eprintln!(
        "xtask: installing the MongoDB stand-in {SECANTUS} into {}...",
        venv.display()
    );
    run_checked(
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        "creating the secantusdb venv",
    )?;
    run_checked(
        Command::new(venv.join("bin").join("pip")).args(["install", "-q", SECANTUS]),
        "pip install secantusdb",
    )
    .context("the stand-in needs PyPI; or point STREAM_TEST_MONGO_URL at a MongoDB replica set")?;
    Ok(launcher)
}

fn start_mongo(root: &Path) -> Result<Server> {
    let dir = root.join("mongo");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = dir.join("secantus.log");
    let mut cmd = Command::new(secantus_launcher()?);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--storage-path", ":memory:", "--enable-test-commands"])
        .args(["--noop-heartbeat-seconds", "1"])
        .current_dir(&dir);
    let mut child = spawn(&mut cmd, &log)?;
    wait_ready(&mut child, port, &log)?;
    Ok(Server {
        kind: Kind::Mongo,
        url: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        pid: Some(child.id()),
    })
}
