//! The initial snapshot's progress: rows copied per table, of the server's estimate, with
//! rows/s and the time left. On a terminal, one line per table on stderr, redrawn in place
//! while the table is copied; the same numbers in `/stats`.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stream_core::CancellationToken;

use super::plan::{Server, SourcePlan};

/// How often the terminal line is redrawn.
const REDRAW: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Table {
    source: String,
    rows: u64,
    estimate: Option<u64>,
    started: Option<Instant>,
    /// When the next table started, or the source went on to streaming.
    finished: Option<Instant>,
    /// Its final terminal line was printed.
    printed: bool,
}

impl Table {
    fn elapsed(&self) -> Duration {
        match (self.started, self.finished) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            (Some(start), None) => start.elapsed(),
            _ => Duration::ZERO,
        }
    }

    fn rate(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds left at the current rate, while the estimate is ahead.
    fn eta(&self) -> Option<f64> {
        let left = self.estimate?.checked_sub(self.rows)?;
        let rate = self.rate();
        (self.finished.is_none() && rate > 0.0).then(|| left as f64 / rate)
    }
}

/// Snapshot progress of every source, by `db.table`.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    tables: Mutex<BTreeMap<String, Table>>,
}

impl Progress {
    fn tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Table>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server's estimate of a table's rows.
    pub(crate) fn estimate(&self, source: &str, table: String, rows: u64) {
        self.tables().entry(table).or_insert_with(|| Table {
            source: source.to_owned(),
            rows: 0,
            estimate: Some(rows),
            started: None,
            finished: None,
            printed: false,
        });
    }

    /// `rows` more rows of `table` were copied; the source's other tables are done (a
    /// snapshot copies one table at a time).
    pub(crate) fn copied(&self, source: &str, table: &str, rows: u64) {
        let mut tables = self.tables();
        let now = Instant::now();
        for (name, other) in tables.iter_mut() {
            if other.source == source && name != table && other.started.is_some() {
                other.finished.get_or_insert(now);
            }
        }
        let entry = tables.entry(table.to_owned()).or_insert_with(|| Table {
            source: source.to_owned(),
            rows: 0,
            estimate: None,
            started: None,
            finished: None,
            printed: false,
        });
        entry.started.get_or_insert(now);
        entry.rows += rows;
    }

    /// The source streams changes now: its snapshot is done.
    pub(crate) fn streaming(&self, source: &str) {
        let now = Instant::now();
        for table in self.tables().values_mut() {
            if table.source == source && table.started.is_some() {
                table.finished.get_or_insert(now);
            }
        }
    }

    /// `/stats`' `snapshot`: per table, rows copied, the estimate, rows/s, seconds left.
    pub(crate) fn json(&self) -> serde_json::Value {
        let tables = self.tables();
        let copied: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .filter(|(_, t)| t.started.is_some())
            .map(|(name, t)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "source": t.source,
                        "rows": t.rows,
                        "estimate": t.estimate,
                        "rows_per_second": t.rate().round(),
                        "eta_seconds": t.eta().map(f64::round),
                        "done": t.finished.is_some(),
                    }),
                )
            })
            .collect();
        serde_json::Value::Object(copied)
    }

    /// Lines for the terminal: finished tables once each, then the one being copied.
    fn lines(&self) -> (Vec<String>, Option<String>) {
        let mut tables = self.tables();
        let mut finished = Vec::new();
        let mut current = None;
        for (name, table) in tables.iter_mut() {
            if table.started.is_none() || table.printed {
                continue;
            }
            let line = line(name, table);
            if table.finished.is_some() {
                table.printed = true;
                finished.push(line);
            } else {
                current = Some(line);
            }
        }
        (finished, current)
    }
}

fn line(name: &str, table: &Table) -> String {
    let rows = table.rows;
    let of = match table.estimate {
        Some(estimate) if table.finished.is_none() => {
            let pct = (rows as f64 / estimate.max(1) as f64 * 100.0).min(100.0);
            format!(" of ~{estimate} ({pct:.0}%)")
        }
        _ => String::new(),
    };
    let eta = table
        .eta()
        .map_or_else(String::new, |s| format!(", ETA {}s", s.round()));
    let state = if table.finished.is_some() {
        "copied"
    } else {
        "copying"
    };
    format!(
        "ustream: snapshot {name}: {state} {rows} rows{of}, {:.0} rows/s{eta}",
        table.rate()
    )
}

/// Redraws the snapshot's lines on stderr while it is a terminal, until `stop`.
pub(crate) fn spawn_printer(progress: std::sync::Arc<Progress>, stop: CancellationToken) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    tokio::spawn(async move {
        let mut drawn = false;
        loop {
            let stopped = tokio::select! {
                () = tokio::time::sleep(REDRAW) => false,
                () = stop.cancelled() => true,
            };
            let (finished, current) = progress.lines();
            let mut err = std::io::stderr().lock();
            for line in finished {
                let _ = writeln!(err, "\r\x1b[K{line}");
                drawn = false;
            }
            if let Some(line) = current {
                let _ = write!(err, "\r\x1b[K{line}");
                drawn = true;
            }
            let _ = err.flush();
            if stopped {
                if drawn {
                    let _ = writeln!(err);
                }
                return;
            }
        }
    });
}

/// The servers' row estimates of the tables `sources` snapshot (MySQL/MariaDB's
/// `information_schema.TABLES.TABLE_ROWS`; MongoDB has none here). Failures only cost the
/// estimate.
pub(crate) async fn estimate(progress: &Progress, sources: &[SourcePlan]) {
    for source in sources {
        let (Server::MySql(config), stream_core::StartFrom::Snapshot) =
            (&source.server, &source.from)
        else {
            continue;
        };
        let listed = stream_mysql::estimate_rows(config);
        match tokio::time::timeout(Duration::from_secs(10), listed).await {
            Ok(Ok(rows)) => {
                for (table, estimate) in rows {
                    progress.estimate(&source.name, table.to_string(), estimate);
                }
            }
            Ok(Err(e)) => tracing::debug!(source = %source.name, error = %e, "no row estimates"),
            Err(_) => tracing::debug!(source = %source.name, "row estimates timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_rows_per_table_and_finishes_a_table_when_the_next_starts() {
        let progress = Progress::default();
        progress.estimate("shop", "shop.a".into(), 10);
        progress.copied("shop", "shop.a", 4);
        progress.copied("shop", "shop.a", 3);
        let stats = progress.json();
        assert_eq!(stats["shop.a"]["rows"], 7);
        assert_eq!(stats["shop.a"]["estimate"], 10);
        assert_eq!(stats["shop.a"]["done"], false);
        let (finished, current) = progress.lines();
        assert!(finished.is_empty());
        let current = current.expect("a line");
        assert!(
            current.starts_with("ustream: snapshot shop.a: copying 7 rows of ~10 (70%)"),
            "{current}"
        );

        progress.copied("shop", "shop.b", 2);
        assert_eq!(progress.json()["shop.a"]["done"], true);
        let (finished, _) = progress.lines();
        assert_eq!(finished.len(), 1, "{finished:?}");
        assert!(finished[0].starts_with("ustream: snapshot shop.a: copied 7 rows,"));
        progress.streaming("shop");
        assert_eq!(progress.json()["shop.b"]["done"], true);
        assert!(progress.json().get("shop.c").is_none());
    }
}
