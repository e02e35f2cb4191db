//! `cargo xtask chaos --edges`: shapes at the edge of what a binlog holds (a 1,000-column table,
//! 10,000 tables, a 64 MB row, a 1,000,000-row transaction), each read by the release
//! `ustream tail`: every change printed, and its peak resident memory under 256 MB.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Ctx;
use super::tail::binlog_end;
use super::verify::for_each_line;
use crate::util::find_binary;

/// The memory budget of `ustream tail`.
const BUDGET_KB: u64 = 256 * 1024;

/// One edge: its setup SQL (run before the position is taken), its writes, and how many row
/// changes they make.
struct Edge {
    name: &'static str,
    /// Its own database, dropped once measured: each edge is measured alone (the next tail
    /// would otherwise also load the 10,000 tables' definitions).
    database: &'static str,
    setup: String,
    writes: Vec<String>,
    changes: u64,
}

fn edges() -> Vec<Edge> {
    let columns: Vec<String> = (1..1000)
        .map(|i| {
            // Mostly INT: InnoDB refuses rows whose columns could exceed half a page.
            if i % 50 != 1 {
                format!("c{i} INT NULL")
            } else {
                format!("c{i} VARCHAR(8) NULL")
            }
        })
        .collect();
    let tables: String = (0..10_000)
        .map(|i| format!("CREATE TABLE e_tables.t{i} (id INT PRIMARY KEY, v INT);\n"))
        .collect();
    let table_writes: Vec<String> = (0..10)
        .map(|chunk| {
            (chunk * 1000..(chunk + 1) * 1000)
                .map(|i| format!("INSERT INTO e_tables.t{i} VALUES (1, {i});\n"))
                .collect()
        })
        .collect();
    vec![
        Edge {
            name: "a table of 1,000 columns (1,000 inserts, 1,000 updates)",
            database: "e_wide",
            setup: format!(
                "CREATE DATABASE e_wide; CREATE TABLE e_wide.t (id INT PRIMARY KEY, {}) ROW_FORMAT=DYNAMIC;",
                columns.join(", ")
            ),
            writes: vec![
                "INSERT INTO e_wide.t (id, c1, c2, c999) SELECT seq, 'a', seq, seq FROM e_wide.seq_1_to_1000;\n\
                 UPDATE e_wide.t SET c2 = c2 + 1, c51 = 'b';\n"
                    .to_owned(),
            ],
            changes: 2_000,
        },
        Edge {
            name: "10,000 tables (one insert each)",
            database: "e_tables",
            setup: format!("CREATE DATABASE e_tables;\n{tables}"),
            writes: table_writes,
            changes: 10_000,
        },
        Edge {
            name: "a 64 MB row (insert, then update: 128 MB of row images)",
            database: "e_big",
            setup: "CREATE DATABASE e_big; CREATE TABLE e_big.t (id INT PRIMARY KEY, doc LONGTEXT);"
                .to_owned(),
            writes: vec![
                "INSERT INTO e_big.t VALUES (1, REPEAT('x', 64 * 1024 * 1024));\n".to_owned(),
                "UPDATE e_big.t SET doc = REPEAT('y', 64 * 1024 * 1024) WHERE id = 1;\n".to_owned(),
            ],
            changes: 2,
        },
        Edge {
            name: "a transaction of 1,000,000 rows",
            database: "e_txn",
            setup: "CREATE DATABASE e_txn; CREATE TABLE e_txn.t (id INT PRIMARY KEY, v VARCHAR(20));"
                .to_owned(),
            writes: vec![
                "BEGIN; INSERT INTO e_txn.t SELECT seq, CONCAT('row ', seq) FROM e_txn.seq_1_to_1000000; COMMIT;\n"
                    .to_owned(),
            ],
            changes: 1_000_000,
        },
    ]
}

/// Runs `ustream tail` to its `--limit`: (seconds, peak RSS in KB). Peak RSS comes from
/// `/usr/bin/time` when installed, else from polling `VmHWM`.
fn measure(ustream: &Path, args: &[String], out: &Path) -> Result<(f64, u64)> {
    let time = find_binary(&["time"]).filter(|p| p.starts_with("/usr/bin"));
    let stats = out.with_extension("time");
    let mut cmd = match &time {
        Some(time) => {
            let mut c = Command::new(time);
            c.args(["-f", "%M", "-o"]).arg(&stats).arg(ustream);
            c
        }
        None => Command::new(ustream),
    };
    let started = Instant::now();
    let mut child = cmd
        .arg("tail")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out)?)
        .stderr(std::fs::File::create(out.with_extension("stderr"))?)
        .spawn()
        .context("starting ustream tail")?;
    let mut polled = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if time.is_none() {
            polled = polled.max(super::tail::peak_rss_kb(child.id()).unwrap_or(0));
        }
        if started.elapsed() > Duration::from_secs(3600) {
            let _ = child.kill();
            bail!("ustream tail did not finish within an hour");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "ustream tail failed ({status}): {}",
            crate::util::tail(&out.with_extension("stderr"), 3)
        );
    }
    let peak = match time {
        Some(_) => std::fs::read_to_string(&stats)?
            .lines()
            .last()
            .context("no peak RSS from /usr/bin/time")?
            .trim()
            .parse()?,
        None => polled,
    };
    Ok((seconds, peak))
}

/// One edge's row of the report, and whether it stayed within its budget.
struct Row {
    line: String,
    ok: bool,
}

fn measure_edge(ctx: &mut Ctx, edge: &Edge) -> Result<Row> {
    eprintln!("chaos edges: {}: writing...", edge.name);
    ctx.server.sql(&edge.setup).map_err(anyhow::Error::msg)?;
    let start = binlog_end(&ctx.url)?;
    for w in &edge.writes {
        ctx.server.sql(w).map_err(anyhow::Error::msg)?;
    }
    eprintln!("chaos edges: {}: reading...", edge.name);
    let out = ctx.work.join("edge.jsonl");
    let args = vec![
        ctx.url.clone(),
        "--from".into(),
        start,
        "--limit".into(),
        edge.changes.to_string(),
        "--idle-exit-ms".into(),
        "30000".into(),
    ];
    let (seconds, peak_kb) = measure(&ctx.ustream, &args, &out)?;
    let mut printed = 0u64;
    let mut bad = 0u64;
    for_each_line(&out, |line| {
        printed += 1;
        if serde_json::from_str::<serde_json::Value>(line).is_err() {
            bad += 1;
        }
        Ok(())
    })?;
    let _ = std::fs::remove_file(&out);
    ctx.server
        .sql(&format!("DROP DATABASE IF EXISTS {};", edge.database))
        .map_err(anyhow::Error::msg)?;
    let within = peak_kb <= BUDGET_KB;
    Ok(Row {
        line: format!(
            "| {} | {printed} of {}{} | {seconds:.1} | {:.0} MB | {} |\n",
            edge.name,
            edge.changes,
            if bad > 0 {
                format!(" ({bad} not JSON)")
            } else {
                String::new()
            },
            peak_kb as f64 / 1024.0,
            if within { "yes" } else { "NO" }
        ),
        ok: within && printed == edge.changes && bad == 0,
    })
}

/// Runs every edge; returns the report and whether one failed.
pub(super) fn run(ctx: &mut Ctx) -> Result<(String, bool)> {
    let mut report = String::from(
        "\n## `cargo xtask chaos --edges` report\n\n\
         | edge | changes printed | seconds | peak RSS | within 256 MB |\n\
         | --- | ---: | ---: | ---: | --- |\n",
    );
    let mut failed = false;
    // `USTREAM_CHAOS_EDGES=64`: only the edges whose name holds this text (one measurement).
    let only = std::env::var("USTREAM_CHAOS_EDGES").unwrap_or_default();
    for edge in edges()
        .into_iter()
        .filter(|e| e.name.contains(only.as_str()))
    {
        match measure_edge(ctx, &edge) {
            Ok(row) => {
                failed |= !row.ok;
                report.push_str(&row.line);
            }
            Err(e) => {
                failed = true;
                let _ = writeln!(report, "| {} | FAILED: {e:#} | | | |", edge.name);
            }
        }
    }
    Ok((report, failed))
}
