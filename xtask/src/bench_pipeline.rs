//! `cargo xtask bench pipeline`: `ustream run` from MariaDB into PostgreSQL, on one machine in
//! one run: catch-up of a change workload (changes/s, peak RSS from `VmHWM`) against a
//! baseline that applies each change with its own autocommitted `INSERT ... ON CONFLICT` or
//! `DELETE`; the initial snapshot of a table (rows/s); and commit-to-target lag at a steady
//! write rate. A throwaway MariaDB; PostgreSQL from `STREAM_TEST_PG_URL`, else a throwaway
//! one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use stream_testkit::mariadb::MariaDb;

use crate::servers::{self, Kind};
use crate::util::{run_checked, state_dir, workspace_root};

const USAGE: &str = "usage: cargo xtask bench pipeline [--quick] [--changes N] [--rows N] [--baseline N] [--rate N] [--seconds N]";

struct Args {
    changes: u64,
    rows: u64,
    baseline: u64,
    rate: u64,
    seconds: u64,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        changes: 1_000_000,
        rows: 1_000_000,
        baseline: 100_000,
        rate: 10_000,
        seconds: 10,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = |name: &str| crate::util::flag_number(&mut it, name, USAGE);
        match *arg {
            "--quick" => {
                a.changes = 100_000;
                a.rows = 100_000;
                a.baseline = 20_000;
                a.seconds = 3;
            }
            "--changes" => a.changes = num("--changes")?.max(1000),
            "--rows" => a.rows = num("--rows")?.max(1000),
            "--baseline" => a.baseline = num("--baseline")?.max(100),
            "--rate" => a.rate = num("--rate")?.max(100),
            "--seconds" => a.seconds = num("--seconds")?.max(1),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    a.baseline = a.baseline.min(a.changes);
    Ok(a)
}

/// `psql URL -Atc SQL`: the output, trimmed.
fn psql(url: &str, sql: &str) -> Result<String> {
    run_checked(
        Command::new("psql").args([url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]),
        "psql",
    )
    .map(|s| s.trim().to_owned())
}

/// A `ustream run` of `config`, its stderr in a file.
struct Run {
    child: Child,
    log: PathBuf,
}

impl Run {
    fn start(ustream: &Path, dir: &Path, name: &str, config: &str) -> Result<Self> {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config)?;
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(ustream)
            .arg("run")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting ustream run")?;
        Ok(Self { child, log })
    }

    /// Peak resident memory so far, in KB (`VmHWM`).
    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "ustream run ended ({status}): {}",
                crate::util::tail(&self.log, 10)
            );
        }
        Ok(())
    }

    fn wait_line(&mut self, prefix: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.alive()?;
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.lines().any(|l| l.starts_with(prefix)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no `{prefix}` from ustream run: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> Result<()> {
        crate::util::signal(self.child.id(), "TERM");
        let status = self.child.wait()?;
        if !status.success() {
            bail!(
                "ustream run exited {status}: {}",
                crate::util::tail(&self.log, 10)
            );
        }
        Ok(())
    }
}

/// Polls `sql` until it prints `expected` (an error, such as a table not created yet, is
/// "not yet"); the seconds it took from `since`.
fn wait_for(run: &mut Run, pg: &str, sql: &str, expected: &str, since: Instant) -> Result<f64> {
    loop {
        run.alive()?;
        if psql(pg, sql).is_ok_and(|out| out == expected) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > Duration::from_secs(3600) {
            bail!("`{sql}` never printed {expected}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn config(mysql: &str, from: &str, table: &str, pg: &str, schema: &str) -> String {
    format!(
        "sources:\n  bench:\n    url: {mysql}/\n    include: [bench.{table}]\n    from: '{from}'\n\
         sinks:\n  pg:\n    url: '{pg}'\n    schema: {schema}\ncheckpoints: postgres\n"
    )
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask bench pipeline: building release binaries...");
    // One invocation for both: their shared dependencies are built once, with one set of
    // features (two invocations may unify features differently and build them twice).
    run_checked(
        Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "stream-cli",
                "--bin",
                "ustream",
                "-p",
                "stream-postgres",
                "--example",
                "pipeline_baseline",
            ])
            .current_dir(&root),
        "cargo build --release ustream pipeline_baseline",
    )?;
    let release = state_dir()
        .parent()
        .map(|t| t.join("release"))
        .context("target dir")?;
    let ustream = release.join("ustream");
    let baseline_bin = release.join("examples").join("pipeline_baseline");
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let dir = servers::unique_temp_dir("bench-pipeline");
    std::fs::create_dir_all(&dir)?;
    let fleet = servers::up(&[Kind::Postgres])?;
    let pg = fleet
        .servers
        .first()
        .map(|s| s.url.clone())
        .context("no PostgreSQL")?;
    let result = (|| -> Result<String> {
        eprintln!(
            "xtask bench pipeline: starting MariaDB and writing {} changes...",
            a.changes
        );
        let server = MariaDb::start(&dir, &["--max-binlog-size=1G"]).map_err(anyhow::Error::msg)?;
        let mysql = server.url();
        psql(
            &pg,
            "DROP SCHEMA IF EXISTS bench_catchup CASCADE; DROP SCHEMA IF EXISTS bench_baseline CASCADE; \
                   DROP SCHEMA IF EXISTS bench_snap CASCADE; DROP SCHEMA IF EXISTS bench_live CASCADE; \
                   CREATE SCHEMA IF NOT EXISTS ustream; \
                   CREATE TABLE IF NOT EXISTS ustream.checkpoints (pipeline text PRIMARY KEY, position text NOT NULL, state jsonb, updated_at timestamptz NOT NULL DEFAULT now()); \
                   DELETE FROM ustream.checkpoints WHERE pipeline = 'bench.pg'",
        )?;
        let (file, pos) = super::workload(&server, a.changes)?;
        let position = format!("binlog:{file}:{pos}+0");
        let expected = server
            .sql("SELECT COUNT(*), SUM(status = 'paid') FROM bench.mixed")
            .map_err(anyhow::Error::msg)?
            .trim()
            .replace('\t', "|");

        eprintln!("xtask bench pipeline: catch-up of {} changes...", a.changes);
        let started = Instant::now();
        let mut run = Run::start(
            &ustream,
            &dir,
            "catchup",
            &config(&mysql, &position, "mixed", &pg, "bench_catchup"),
        )?;
        let check = "SELECT count(*) || '|' || count(*) FILTER (WHERE status = 'paid') FROM bench_catchup.mixed";
        let catchup_secs = wait_for(&mut run, &pg, check, &expected, started)?;
        let catchup_rss = run.peak_rss_kb();
        run.stop()?;

        eprintln!(
            "xtask bench pipeline: baseline (one autocommitted statement per change) over {} changes...",
            a.baseline
        );
        psql(
            &pg,
            "CREATE SCHEMA bench_baseline; CREATE TABLE bench_baseline.mixed (LIKE bench_catchup.mixed INCLUDING ALL)",
        )?;
        let out = run_checked(
            Command::new(&baseline_bin).args([
                &mysql,
                &position,
                &pg,
                "bench_baseline",
                &a.baseline.to_string(),
            ]),
            "pipeline_baseline",
        )?;
        let mut f = out.split_whitespace();
        let (base_n, base_secs): (f64, f64) = (
            f.next().context("baseline count")?.parse()?,
            f.next().context("baseline seconds")?.parse()?,
        );

        eprintln!("xtask bench pipeline: snapshot of {} rows...", a.rows);
        server
            .sql(&format!(
                "CREATE TABLE bench.snap LIKE bench.mixed; \
                 INSERT INTO bench.snap SELECT seq, seq % 97, (seq % 100000) / 100, CONCAT('item ', seq), \
                 IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50)), '2024-02-29 12:34:56.000001' + INTERVAL seq SECOND, \
                 seq % 2, seq / 7, 1 + seq % 3 FROM bench.seq_1_to_{}",
                a.rows
            ))
            .map_err(anyhow::Error::msg)?;
        psql(
            &pg,
            "DELETE FROM ustream.checkpoints WHERE pipeline = 'bench.pg'",
        )?;
        let started = Instant::now();
        let mut run = Run::start(
            &ustream,
            &dir,
            "snapshot",
            &config(&mysql, "snapshot", "snap", &pg, "bench_snap"),
        )?;
        let snap_secs = wait_for(
            &mut run,
            &pg,
            "SELECT count(*) FROM bench_snap.snap",
            &a.rows.to_string(),
            started,
        )?;
        let snap_rss = run.peak_rss_kb();
        run.stop()?;

        eprintln!(
            "xtask bench pipeline: lag at {} commits/s for {} s...",
            a.rate, a.seconds
        );
        server
            .sql("CREATE TABLE bench.live (id BIGINT AUTO_INCREMENT PRIMARY KEY, created DATETIME(6) NOT NULL DEFAULT NOW(6))")
            .map_err(anyhow::Error::msg)?;
        psql(
            &pg,
            "DELETE FROM ustream.checkpoints WHERE pipeline = 'bench.pg'",
        )?;
        let mut run = Run::start(
            &ustream,
            &dir,
            "live",
            &config(&mysql, "end", "live", &pg, "bench_live"),
        )?;
        run.wait_line("ustream: running")?;
        let total = a.rate * a.seconds;
        // One autocommitted insert per commit, paced against the clock inside the server (a
        // client's round trips could not reach 10,000 commits/s); every 1 ms step catches up.
        server
            .sql(
                "DELIMITER //\nCREATE PROCEDURE bench.paced(total INT, rate INT) BEGIN \
                   DECLARE i INT DEFAULT 0; DECLARE t0 DOUBLE DEFAULT UNIX_TIMESTAMP(SYSDATE(6)); \
                   DECLARE ahead DOUBLE; \
                   WHILE i < total DO \
                     INSERT INTO bench.live () VALUES (); SET i = i + 1; \
                     SET ahead = t0 + i / rate - UNIX_TIMESTAMP(SYSDATE(6)); \
                     IF ahead > 0.001 THEN DO SLEEP(ahead); END IF; \
                   END WHILE; END //\nDELIMITER ;\n",
            )
            .map_err(anyhow::Error::msg)?;
        let writing = Instant::now();
        server
            .sql(&format!(
                "SET time_zone = '+00:00'; CALL bench.paced({total}, {})",
                a.rate
            ))
            .map_err(anyhow::Error::msg)?;
        let achieved = total as f64 / writing.elapsed().as_secs_f64();
        wait_for(
            &mut run,
            &pg,
            "SELECT count(*) FROM bench_live.live",
            &total.to_string(),
            Instant::now(),
        )?;
        let lag = psql(
            &pg,
            "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1) || '|' || \
                    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1) || '|' || \
                    round(max(l)::numeric, 1) \
             FROM (SELECT extract(epoch FROM \"_synced_at\" - (created AT TIME ZONE 'UTC')) * 1000 AS l FROM bench_live.live) s",
        )?;
        run.stop()?;
        drop(server);

        let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let rate = a.changes as f64 / catchup_secs;
        let base_rate = base_n / base_secs;
        let mut lag = lag.split('|');
        let mut next = || lag.next().unwrap_or("?").to_owned();
        let (p50, p99, max) = (next(), next(), next());
        let mut table = String::new();
        let _ = writeln!(table, "| measure | result | goal |");
        let _ = writeln!(table, "| --- | --- | --- |");
        let _ = writeln!(
            table,
            "| catch-up, {} changes (`ustream run`) | {rate:.0} changes/s ({catchup_secs:.1} s) | ≥ 150,000/s |",
            a.changes
        );
        let _ = writeln!(
            table,
            "| baseline: one autocommitted statement per change ({} changes) | {base_rate:.0} changes/s | |",
            base_n as u64
        );
        let _ = writeln!(
            table,
            "| catch-up / baseline | {:.1}x | ≥ 10x |",
            rate / base_rate
        );
        let _ = writeln!(
            table,
            "| peak RSS of `ustream run`, catch-up | {:.1} MB | < 128 MB |",
            catchup_rss as f64 / 1024.0
        );
        let _ = writeln!(
            table,
            "| snapshot, {} rows | {:.0} rows/s ({snap_secs:.1} s), peak RSS {:.1} MB | |",
            a.rows,
            a.rows as f64 / snap_secs,
            snap_rss as f64 / 1024.0
        );
        let _ = writeln!(
            table,
            "| commit-to-target lag at {} commits/s ({achieved:.0}/s achieved) | p50 {p50} ms, p99 {p99} ms, max {max} ms | p99 < 100 ms |",
            a.rate
        );
        let _ = writeln!(
            table,
            "\nload average before: {}; after: {}",
            load_before
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            load_after
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let svg = chart(&[
            ("ustream run catch-up", rate, true),
            ("goal", 150_000.0, false),
            ("DBConvert (published)", 83_000.0, false),
            (
                "ustream run snapshot (rows/s)",
                a.rows as f64 / snap_secs,
                true,
            ),
            ("cartridge-warp (target)", 10_000.0, false),
            ("baseline: statement per change", base_rate, false),
        ]);
        let path = if a.changes >= 1_000_000 {
            root.join("docs").join("benchmarks-pipeline.svg")
        } else {
            state_dir().join("benchmarks-pipeline.svg")
        };
        std::fs::write(&path, svg)?;
        let _ = writeln!(table, "chart: {}", path.display());
        Ok(table)
    })();
    servers::down(&fleet);
    let _ = std::fs::remove_dir_all(&dir);
    let table = result?;
    print!("{table}");
    std::fs::write(state_dir().join("bench-pipeline.md"), &table)?;
    Ok(())
}

/// A bar chart of changes per second: this run's measures in green, goals and peers in grey.
fn chart(bars: &[(&str, f64, bool)]) -> String {
    let max = bars.iter().map(|b| b.1).fold(f64::MIN_POSITIVE, f64::max);
    let (w, bar, gap, left) = (760.0, 26.0, 10.0, 250.0);
    let h = 40.0 + bars.len() as f64 * (bar + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"10\" y=\"22\" font-weight=\"bold\">MariaDB to PostgreSQL, changes per second (longer is faster)</text>\n"
    );
    for (i, (name, speed, ours)) in bars.iter().enumerate() {
        let y = 36.0 + i as f64 * (bar + gap);
        let len = (w - left - 80.0) * speed / max;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.0}\">{name}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{len:.0}\" height=\"{bar}\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{:.1}k</text>",
            y + 18.0,
            if *ours { "#2b7a4b" } else { "#8a8f98" },
            left + len + 6.0,
            y + 18.0,
            speed / 1000.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
