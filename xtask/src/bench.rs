//! `cargo xtask bench`: end-to-end binlog readers side by side on one binlog, and live lag.
//!
//! One throwaway MariaDB; a workload of row changes (60 % inserts, 30 % updates, 10 % deletes
//! over a table of nine mixed-type columns, 1,000 rows per transaction); then, in alternating
//! order for several rounds, each reader catches up from the workload's first position until it
//! has seen every row change: our library's `Stream` (count only), `ustream tail` to /dev/null
//! (full JSON), zongji (npm), python-mysql-replication (PyPI) and mysql_cdc (crates.io, built
//! beside, never a dependency of ours). Wall time and peak RSS come from `/usr/bin/time`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use stream_testkit::mariadb::MariaDb;

use crate::util::{find_binary, run_checked, state_dir, workspace_root};

#[path = "bench_pipeline.rs"]
mod pipeline;

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--rows N] [--rounds N] [--rate N] [--seconds N]";

struct Args {
    rows: u64,
    rounds: usize,
    rate: u64,
    seconds: u64,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        rows: 1_000_000,
        rounds: 3,
        rate: 10_000,
        seconds: 5,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = |name: &str| crate::util::flag_number(&mut it, name, USAGE);
        match *arg {
            "--quick" => {
                a.rows = 100_000;
                a.rounds = 2;
                a.rate = 2_000;
                a.seconds = 2;
            }
            "--rows" => a.rows = num("--rows")?.max(1000),
            "--rounds" => a.rounds = num("--rounds")?.max(1) as usize,
            "--rate" => a.rate = num("--rate")?.max(1),
            "--seconds" => a.seconds = num("--seconds")?.max(1),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(a)
}

/// One reader: how to run it, or why it cannot run here.
struct Reader {
    name: &'static str,
    command: Result<Vec<String>, String>,
}

#[derive(Default, Clone)]
struct Sample {
    seconds: Vec<f64>,
    rss_kb: Vec<u64>,
    error: Option<String>,
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    if let ["pipeline", rest @ ..] = args {
        return pipeline::run(rest);
    }
    let a = parse(args)?;
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let time = find_binary(&["time"])
        .filter(|p| p.starts_with("/usr/bin"))
        .context("/usr/bin/time is needed to measure peak RSS: apt-get install time")?;
    eprintln!("xtask bench: building release binaries...");
    run_checked(
        Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "stream-cli",
                "-p",
                "ultimate-stream-benches",
                "--bins",
            ])
            .current_dir(&root),
        "cargo build --release",
    )?;
    let release = state_dir()
        .parent()
        .map(|t| t.join("release"))
        .context("target dir")?;
    let peers = state_dir().join("peers");
    std::fs::create_dir_all(&peers)?;

    let dir = crate::servers::unique_temp_dir("bench");
    eprintln!(
        "xtask bench: starting MariaDB and writing {} row changes...",
        a.rows
    );
    let server = MariaDb::start(&dir, &["--max-binlog-size=1G"]).map_err(anyhow::Error::msg)?;
    let (file, pos) = workload(&server, a.rows)?;
    let url = server.url();
    let host_port = url.rsplit('@').next().unwrap_or_default().to_owned();
    let (host, port) = host_port.split_once(':').unwrap_or(("127.0.0.1", "3306"));
    let position = format!("binlog:{file}:{pos}+0");
    let rows = a.rows.to_string();

    let readers = vec![
        Reader {
            name: "ultimate-stream Stream (count)",
            command: Ok(vec![
                release.join("stream-count").display().to_string(),
                "count".into(),
                url.clone(),
                position.clone(),
                rows.clone(),
            ]),
        },
        Reader {
            name: "ustream tail (JSON to /dev/null)",
            command: Ok(vec![
                release.join("ustream").display().to_string(),
                "tail".into(),
                url.clone(),
                "--from".into(),
                position.clone(),
                "--limit".into(),
                rows.clone(),
            ]),
        },
        Reader {
            name: "mysql_cdc 0.2.1",
            command: mysql_cdc_reader(&peers, &cargo).map(|bin| {
                vec![
                    bin.display().to_string(),
                    host.into(),
                    port.into(),
                    file.clone(),
                    pos.to_string(),
                    rows.clone(),
                ]
            }),
        },
        Reader {
            name: "zongji 0.5.1 (Node)",
            command: zongji_reader(&peers).map(|script| {
                vec![
                    "node".into(),
                    script.display().to_string(),
                    host.into(),
                    port.into(),
                    file.clone(),
                    pos.to_string(),
                    rows.clone(),
                ]
            }),
        },
        Reader {
            name: "python-mysql-replication 1.0.17",
            command: python_reader(&peers).map(|(python, script)| {
                vec![
                    python.display().to_string(),
                    script.display().to_string(),
                    host.into(),
                    port.into(),
                    file.clone(),
                    pos.to_string(),
                    rows.clone(),
                ]
            }),
        },
    ];

    let mut samples = vec![Sample::default(); readers.len()];
    for round in 0..a.rounds {
        // Alternate the order so no reader always runs on a warm (or cold) server.
        let mut order: Vec<usize> = (0..readers.len()).collect();
        order.rotate_left(round % readers.len());
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let Ok(cmd) = &readers[i].command else {
                continue;
            };
            if samples[i].error.is_some() {
                continue;
            }
            eprintln!(
                "xtask bench: round {} / {}: {}",
                round + 1,
                a.rounds,
                readers[i].name
            );
            match measure(&time, cmd) {
                Ok((secs, rss)) => {
                    samples[i].seconds.push(secs);
                    samples[i].rss_kb.push(rss);
                }
                Err(e) => samples[i].error = Some(format!("{e:#}")),
            }
        }
    }
    eprintln!(
        "xtask bench: live latency at {} commits/s for {} s...",
        a.rate, a.seconds
    );
    let latency = run_checked(
        Command::new(release.join("stream-count")).args([
            "latency",
            &url,
            &a.rate.to_string(),
            &a.seconds.to_string(),
            "8",
        ]),
        "latency benchmark",
    )
    .map(|s| s.trim().to_owned());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let report = report(&a, &readers, &samples, &latency);
    print!("{}", report.table);
    let out = state_dir().join("bench.json");
    std::fs::write(&out, &report.json)?;
    // Only a full-size run replaces the chart docs/benchmarks.md shows.
    let svg = if a.rows >= 1_000_000 {
        root.join("docs").join("benchmarks-readers.svg")
    } else {
        state_dir().join("benchmarks-readers.svg")
    };
    std::fs::write(&svg, chart(&readers, &samples, a.rows))?;
    eprintln!(
        "xtask bench: JSON in {}, chart in {}",
        out.display(),
        svg.display()
    );
    Ok(())
}

/// Writes the workload; returns the binlog file and offset where it starts.
pub(crate) fn workload(server: &MariaDb, rows: u64) -> Result<(String, u64)> {
    server
        .sql(
            "CREATE DATABASE bench; CREATE TABLE bench.mixed (
               id BIGINT PRIMARY KEY, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL,
               name VARCHAR(40) NOT NULL, note TEXT, created DATETIME(6) NOT NULL,
               flag TINYINT UNSIGNED NOT NULL, score DOUBLE, status ENUM('new','paid','shipped') NOT NULL)",
        )
        .map_err(anyhow::Error::msg)?;
    let status = server
        .sql("SHOW MASTER STATUS")
        .map_err(anyhow::Error::msg)?;
    let mut parts = status.split_whitespace();
    let (file, pos) = (
        parts.next().context("binlog file")?.to_owned(),
        parts.next().context("binlog pos")?.parse()?,
    );
    let inserts = rows * 6 / 10;
    let updates = rows * 3 / 10;
    let deletes = rows - inserts - updates;
    let mut sql = String::new();
    let chunk = 1000;
    let mut done = 0;
    while done < inserts {
        let n = chunk.min(inserts - done);
        let _ = write!(
            sql,
            "INSERT INTO bench.mixed SELECT {done} + seq, seq % 97, (seq % 100000) / 100, CONCAT('item ', seq), \
             IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50)), '2024-02-29 12:34:56.000001' + INTERVAL seq SECOND, \
             seq % 2, seq / 7, 1 + seq % 3 FROM bench.seq_1_to_{n};"
        );
        done += n;
    }
    let mut done = 0;
    while done < updates {
        let n = chunk.min(updates - done);
        let from = done % inserts.max(1);
        let _ = write!(
            sql,
            "UPDATE bench.mixed SET qty = qty + 1, status = 'paid' WHERE id > {from} AND id <= {};",
            from + n
        );
        done += n;
    }
    let mut done = 0;
    while done < deletes {
        let n = chunk.min(deletes - done);
        let from = inserts - done - n;
        let _ = write!(
            sql,
            "DELETE FROM bench.mixed WHERE id > {from} AND id <= {};",
            from + n
        );
        done += n;
    }
    let started = Instant::now();
    server.sql(&sql).map_err(anyhow::Error::msg)?;
    eprintln!(
        "xtask bench: workload written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((file, pos))
}

/// Runs a reader under /usr/bin/time: (wall seconds, peak RSS in KB).
fn measure(time: &Path, cmd: &[String]) -> Result<(f64, u64)> {
    let stats = std::env::temp_dir().join(format!("ustream-bench-time-{}", std::process::id()));
    let out = Command::new(time)
        .args(["-f", "%e %M", "-o"])
        .arg(&stats)
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", cmd[0]))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{} failed: {}",
            cmd[0],
            err.lines().last().unwrap_or("no output")
        );
    }
    let text = std::fs::read_to_string(&stats)?;
    let line = text.lines().last().context("no timing")?;
    let mut f = line.split_whitespace();
    Ok((
        f.next().context("time")?.parse()?,
        f.next().context("rss")?.parse()?,
    ))
}

fn mysql_cdc_reader(peers: &Path, cargo: &str) -> Result<PathBuf, String> {
    let dir = peers.join("mysql_cdc_reader");
    let bin = dir.join("target/release/mysql_cdc_reader");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    // Its own workspace root: not a member of ours, and not a dependency of any of our crates.
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"mysql_cdc_reader\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dependencies]\nmysql_cdc = \"=0.2.1\"\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/main.rs"), MYSQL_CDC_MAIN).map_err(|e| e.to_string())?;
    eprintln!("xtask bench: building the mysql_cdc peer (once)...");
    run_checked(
        Command::new(cargo)
            .args(["build", "--quiet", "--release", "--manifest-path"])
            .arg(dir.join("Cargo.toml")),
        "building the mysql_cdc reader",
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok(bin)
}

const MYSQL_CDC_MAIN: &str = r#"
use mysql_cdc::binlog_client::BinlogClient;
use mysql_cdc::events::binlog_event::BinlogEvent;
use mysql_cdc::binlog_options::BinlogOptions;
use mysql_cdc::replica_options::ReplicaOptions;
use mysql_cdc::ssl_mode::SslMode;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rows: usize = a[5].parse().unwrap();
    let options = ReplicaOptions {
        hostname: a[1].clone(),
        port: a[2].parse().unwrap(),
        username: "ustream".into(),
        password: "ustream".into(),
        blocking: true,
        ssl_mode: SslMode::Disabled,
        server_id: 4242,
        binlog: BinlogOptions::from_position(a[3].clone(), a[4].parse().unwrap()),
        ..Default::default()
    };
    let mut client = BinlogClient::new(options);
    let mut seen = 0;
    for result in client.replicate().unwrap() {
        let (_header, event) = result.unwrap();
        seen += match event {
            BinlogEvent::WriteRowsEvent(e) => e.rows.len(),
            BinlogEvent::UpdateRowsEvent(e) => e.rows.len(),
            BinlogEvent::DeleteRowsEvent(e) => e.rows.len(),
            _ => 0,
        };
        if seen >= rows {
            break;
        }
    }
    println!("{seen}");
}
"#;

fn zongji_reader(peers: &Path) -> Result<PathBuf, String> {
    if find_binary(&["node"]).is_none() {
        return Err("node is not installed".into());
    }
    let dir = peers.join("zongji");
    if !dir.join("node_modules/zongji").is_dir() {
        eprintln!("xtask bench: installing zongji from npm (once)...");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        run_checked(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("zongji@0.5.1"),
            "npm install zongji",
        )
        .map_err(|e| format!("{e:#}"))?;
    }
    let script = dir.join("count.js");
    std::fs::write(
        &script,
        r#"
const ZongJi = require('zongji');
const [host, port, filename, position, rows] = process.argv.slice(2);
const z = new ZongJi({ host, port: Number(port), user: 'ustream', password: 'ustream' });
let seen = 0;
z.on('binlog', (e) => {
  if (e.rows) {
    seen += e.rows.length;
    if (seen >= Number(rows)) { console.log(seen); process.exit(0); }
  }
});
z.on('error', (e) => { console.error(String(e)); process.exit(1); });
z.start({ filename, position: Number(position), serverId: 4243,
  includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows'] });
"#,
    )
    .map_err(|e| e.to_string())?;
    Ok(script)
}

fn python_reader(peers: &Path) -> Result<(PathBuf, PathBuf), String> {
    let venv = peers.join("pyrepl");
    let python = venv.join("bin/python");
    if !python.is_file() || !venv.join(".installed").is_file() {
        eprintln!("xtask bench: installing python-mysql-replication from PyPI (once)...");
        let system = find_binary(&["python3.11", "python3"]).ok_or("python3 is not installed")?;
        run_checked(
            Command::new(system).args(["-m", "venv"]).arg(&venv),
            "python venv",
        )
        .map_err(|e| format!("{e:#}"))?;
        run_checked(
            Command::new(venv.join("bin/pip")).args(["install", "-q", "mysql-replication==1.0.17"]),
            "pip install mysql-replication",
        )
        .map_err(|e| format!("{e:#}"))?;
        std::fs::write(venv.join(".installed"), "").map_err(|e| e.to_string())?;
    }
    let script = peers.join("pyrepl_count.py");
    std::fs::write(
        &script,
        r#"
import sys
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent
host, port, log_file, log_pos, rows = sys.argv[1:6]
stream = BinLogStreamReader(
    connection_settings={"host": host, "port": int(port), "user": "ustream", "passwd": "ustream"},
    server_id=4244, log_file=log_file, log_pos=int(log_pos), resume_stream=True, blocking=True,
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
seen = 0
for event in stream:
    seen += len(event.rows)
    if seen >= int(rows):
        break
stream.close()
print(seen)
"#,
    )
    .map_err(|e| e.to_string())?;
    Ok((python, script))
}

struct Report {
    table: String,
    json: String,
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied()
}

fn report(a: &Args, readers: &[Reader], samples: &[Sample], latency: &Result<String>) -> Report {
    let ours = samples
        .first()
        .and_then(|s| median(&s.seconds))
        .map(|t| a.rows as f64 / t);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n{} row changes, {} rounds (median), one MariaDB on loopback\n",
        a.rows, a.rounds
    );
    let _ = writeln!(table, "| reader | median s | rows/s | vs ours | peak RSS |");
    let _ = writeln!(table, "| --- | ---: | ---: | ---: | ---: |");
    let mut json_rows = Vec::new();
    for (r, s) in readers.iter().zip(samples) {
        let why = match (&r.command, &s.error) {
            (Err(e), _) | (_, Some(e)) => Some(e.clone()),
            _ => None,
        };
        match (why, median(&s.seconds)) {
            (None, Some(t)) => {
                let rate = a.rows as f64 / t;
                let ratio = ours.map_or(String::from("-"), |o| format!("{:.2}x", rate / o));
                let rss = s.rss_kb.iter().max().copied().unwrap_or(0);
                let _ = writeln!(
                    table,
                    "| {} | {t:.2} | {:.0} | {ratio} | {:.1} MB |",
                    r.name,
                    rate,
                    rss as f64 / 1024.0
                );
                json_rows.push(format!(
                    "{{\"reader\":\"{}\",\"median_s\":{t:.3},\"rows_per_s\":{rate:.0},\"peak_rss_kb\":{rss}}}",
                    r.name
                ));
            }
            (why, _) => {
                let why = why.unwrap_or_else(|| "no result".into()).replace('|', "/");
                let _ = writeln!(
                    table,
                    "| {} | - | - | - | unavailable: {} |",
                    r.name,
                    why.lines().next().unwrap_or("")
                );
                json_rows.push(format!(
                    "{{\"reader\":\"{}\",\"unavailable\":{:?}}}",
                    r.name, why
                ));
            }
        }
    }
    let lat = match latency {
        Ok(l) => l.clone(),
        Err(e) => format!("{{\"error\":{:?}}}", format!("{e:#}")),
    };
    let _ = writeln!(
        table,
        "\nlive lag (target {} commits/s, {} s, 8 writers): {lat}",
        a.rate, a.seconds
    );
    let json = format!(
        "{{\"rows\":{},\"rounds\":{},\"readers\":[{}],\"latency\":{lat}}}\n",
        a.rows,
        a.rounds,
        json_rows.join(",")
    );
    Report { table, json }
}

/// A horizontal bar chart of rows/s per reader, as SVG.
fn chart(readers: &[Reader], samples: &[Sample], total: u64) -> String {
    let rows: Vec<(&str, f64)> = readers
        .iter()
        .zip(samples)
        .filter(|(r, s)| r.command.is_ok() && s.error.is_none())
        .filter_map(|(r, s)| median(&s.seconds).map(|t| (r.name, total as f64 / t)))
        .collect();
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (w, bar, gap, left) = (760.0, 26.0, 10.0, 250.0);
    let h = 40.0 + rows.len() as f64 * (bar + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"10\" y=\"22\" font-weight=\"bold\">Binlog catch-up, rows per second (longer is faster)</text>\n"
    );
    for (i, (name, speed)) in rows.iter().enumerate() {
        let y = 36.0 + i as f64 * (bar + gap);
        let len = (w - left - 80.0) * speed / max;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.0}\">{name}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{len:.0}\" height=\"{bar}\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{:.0}k</text>",
            y + 18.0,
            if i < 2 { "#2b7a4b" } else { "#8a8f98" },
            left + len + 6.0,
            y + 18.0,
            speed / 1000.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
