//! The binlog reader: connection, prerequisites, positions, transaction tracking, resume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use mysql_async::binlog::EventFlags;
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn};
use stream_core::{
    Backoff, Batch, CancellationToken, ChangeEvent, ErrorClass, MariaDbGtid, MariaDbGtidList,
    MySqlPosition, Namespace, Op, Opened, Position, Row, SchemaChange, SnapshotProgress, Source,
    SourceError, SourceEvent, SourceKind, StartFrom, TxnStart, Value,
};
use tokio::sync::mpsc;

use crate::MySqlConfig;
use crate::binary::Reader;
use crate::decoder::TableDecoder;
use crate::schema::Catalog;
use crate::tablemap::TableMap;

mod event_type {
    pub(super) const QUERY: u8 = 2;
    pub(super) const ROTATE: u8 = 4;
    pub(super) const FORMAT_DESCRIPTION: u8 = 15;
    pub(super) const XID: u8 = 16;
    pub(super) const TABLE_MAP: u8 = 19;
    pub(super) const WRITE_ROWS_V1: u8 = 23;
    pub(super) const UPDATE_ROWS_V1: u8 = 24;
    pub(super) const DELETE_ROWS_V1: u8 = 25;
    pub(super) const WRITE_ROWS_V2: u8 = 30;
    pub(super) const UPDATE_ROWS_V2: u8 = 31;
    pub(super) const DELETE_ROWS_V2: u8 = 32;
    pub(super) const MYSQL_GTID: u8 = 33;
    pub(super) const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub(super) const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub(super) const XA_PREPARE: u8 = 38;
    pub(super) const MARIADB_GTID: u8 = 162;
    pub(super) const MARIADB_GTID_LIST: u8 = 163;
    pub(super) const MARIADB_QUERY_COMPRESSED: u8 = 165;
    pub(super) const MARIADB_ROWS_COMPRESSED_FIRST: u8 = 166;
    pub(super) const MARIADB_ROWS_COMPRESSED_LAST: u8 = 171;
}

/// Most events in one batch; a batch is also flushed whenever the server has nothing more
/// ready, so latency stays low on a live stream.
const MAX_BATCH: usize = 1024;

/// Reads the binlog of a MySQL or MariaDB server as a [`Source`].
#[derive(Debug, Clone)]
pub struct MySqlSource {
    config: MySqlConfig,
}

impl MySqlSource {
    /// A source with these settings.
    pub fn new(config: MySqlConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &MySqlConfig {
        &self.config
    }
}

fn opts(config: &MySqlConfig) -> mysql_async::Opts {
    config.opts().max_allowed_packet(Some(1 << 30)).into()
}

/// Maps a driver error to a source error; messages come from the server, never the URL.
pub(crate) fn map_err(config: &MySqlConfig, e: mysql_async::Error) -> SourceError {
    match e {
        mysql_async::Error::Server(se) => match se.code {
            1045 | 1044 | 1049 | 1130 => SourceError::Connect {
                target: config.endpoint(),
                reason: se.message,
                class: ErrorClass::Definite,
            },
            1227 => SourceError::Prerequisite {
                setting: "privileges".into(),
                expected: "REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR)".into(),
                actual: format!("missing ({})", se.message),
            },
            1236 => SourceError::Other {
                reason: format!("the server cannot send the binlog: {}", se.message),
                class: ErrorClass::Definite,
            },
            _ => SourceError::Other {
                reason: format!("server error {}: {}", se.code, se.message),
                class: ErrorClass::Transient,
            },
        },
        other => SourceError::ConnectionLost {
            reason: format!("{} ({})", other, config.endpoint()),
        },
    }
}

pub(crate) async fn connect(config: &MySqlConfig) -> Result<Conn, SourceError> {
    match Conn::new(opts(config)).await {
        Ok(c) => Ok(c),
        Err(mysql_async::Error::Server(se)) => Err(map_err(config, mysql_async::Error::Server(se))),
        Err(e) => Err(SourceError::Connect {
            target: config.endpoint(),
            reason: e.to_string(),
            class: ErrorClass::Transient,
        }),
    }
}

/// What the server says about itself.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub(crate) checksum: bool,
}

/// Checks `log_bin`, `binlog_format` and `binlog_row_image`, naming expected and actual values.
pub(crate) async fn check_prerequisites(
    config: &MySqlConfig,
    conn: &mut Conn,
) -> Result<ServerInfo, SourceError> {
    type Settings = (
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let row: Option<Settings> = conn
        .query_first(
            "SELECT CAST(@@GLOBAL.log_bin AS CHAR), @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
             @@version, @@GLOBAL.binlog_checksum",
        )
        .await
        .map_err(|e| map_err(config, e))?;
    let Some((log_bin, format, image, version, checksum)) = row else {
        return Err(SourceError::Other {
            reason: "the server returned no settings".into(),
            class: ErrorClass::Transient,
        });
    };
    let on = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"))
    };
    if !on(&log_bin) {
        return Err(SourceError::Prerequisite {
            setting: "log_bin".into(),
            expected: "ON (start the server with --log-bin)".into(),
            actual: "OFF".into(),
        });
    }
    let check = |setting: &str, expected: &str, actual: Option<String>| {
        let actual = actual.unwrap_or_else(|| "unset".into());
        if actual.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(SourceError::Prerequisite {
                setting: setting.into(),
                expected: expected.into(),
                actual,
            })
        }
    };
    check("binlog_format", "ROW", format)?;
    check("binlog_row_image", "FULL", image)?;
    tracing::debug!(%version, "binlog prerequisites met");
    Ok(ServerInfo {
        checksum: checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE")),
    })
}

/// `SHOW BINARY LOGS`: file names and sizes, oldest first.
pub(crate) async fn binary_logs(
    config: &MySqlConfig,
    conn: &mut Conn,
) -> Result<Vec<(String, u64)>, SourceError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| map_err(config, e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name: Option<String> = r.get(0);
            let size: Option<u64> = r.get(1);
            Some((name?, size.unwrap_or(0)))
        })
        .collect())
}

/// Where a stream starts: a file position and rows of that transaction to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilePos {
    pub(crate) file: Arc<str>,
    pub(crate) offset: u64,
    pub(crate) skip: u64,
}

impl FilePos {
    fn position(&self) -> Position {
        Position::binlog(self.file.clone(), self.offset, self.skip)
    }
}

fn resolve_start(from: &StartFrom, logs: &[(String, u64)]) -> Result<FilePos, SourceError> {
    let oldest = logs.first().ok_or_else(|| SourceError::Prerequisite {
        setting: "binary logs".into(),
        expected: "at least one binlog file".into(),
        actual: "none (SHOW BINARY LOGS is empty)".into(),
    })?;
    match from {
        StartFrom::Earliest => Ok(FilePos {
            file: oldest.0.as_str().into(),
            offset: 4,
            skip: 0,
        }),
        StartFrom::Latest => {
            let (file, size) = logs.last().unwrap_or(oldest);
            Ok(FilePos {
                file: file.as_str().into(),
                offset: *size,
                skip: 0,
            })
        }
        StartFrom::Position(Position::MySql(MySqlPosition {
            start: TxnStart::File { file, offset },
            skip,
        })) => {
            if !logs.iter().any(|(f, _)| **f == **file) {
                let newest = logs.last().map_or(oldest.0.as_str(), |l| l.0.as_str());
                let purged = compare_files(file, &oldest.0).is_some_and(|o| o.is_lt())
                    || compare_files(file, newest).is_none();
                if purged {
                    return Err(SourceError::PositionPurged {
                        requested: Position::binlog(file.clone(), *offset, *skip).to_string(),
                        oldest: Position::binlog(oldest.0.clone(), 4, 0).to_string(),
                    });
                }
                return Err(SourceError::Other {
                    reason: format!(
                        "binlog file {file} does not exist on the server yet (newest is {newest})"
                    ),
                    class: ErrorClass::Definite,
                });
            }
            Ok(FilePos {
                file: file.clone(),
                offset: *offset,
                skip: *skip,
            })
        }
        StartFrom::Snapshot => Err(SourceError::Unsupported {
            what: "a snapshot is not a binlog position".into(),
        }),
        StartFrom::Position(other) => Err(SourceError::Unsupported {
            what: format!(
                "starting a MySQL/MariaDB stream from position {other} (only binlog file positions are supported so far)"
            ),
        }),
    }
}

fn compare_files(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    Position::binlog(a, 0, 0).compare(&Position::binlog(b, 0, 0))
}

fn unique_server_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (std::process::id().wrapping_mul(0x9e37_79b9)) ^ nanos.rotate_left(13);
    0x4000_0000 | (mixed & 0x3fff_ffff)
}

#[async_trait::async_trait]
impl Source for MySqlSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MySql
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let config = self.config.clone();
        let mut conn = connect(&config).await?;
        let info = check_prerequisites(&config, &mut conn).await?;
        let logs = binary_logs(&config, &mut conn).await?;
        let mut view_filter = None;
        let mut resume_gtid = None;
        let mut config = config;
        let (start, snapshot, shown) = match &from {
            StartFrom::Snapshot => {
                let mut snap_conn = connect(&config).await?;
                let (file, offset) = crate::snapshot::begin(&config, &mut snap_conn).await?;
                let shown = Position::MySql(MySqlPosition {
                    start: TxnStart::Snapshot(SnapshotProgress {
                        file: file.clone(),
                        offset,
                        table: String::new(),
                        after: None,
                    }),
                    skip: 0,
                });
                (
                    FilePos {
                        file: file.into(),
                        offset,
                        skip: 0,
                    },
                    Some((snap_conn, None)),
                    Some(shown),
                )
            }
            StartFrom::Position(
                p @ Position::MySql(MySqlPosition {
                    start: TxnStart::Snapshot(progress),
                    ..
                }),
            ) => {
                let binlog = Position::binlog(progress.file.clone(), progress.offset, 0);
                let start = resolve_start(&StartFrom::Position(binlog), &logs)?;
                let mut snap_conn = connect(&config).await?;
                let (file2, offset2) = crate::snapshot::begin(&config, &mut snap_conn).await?;
                view_filter = ViewFilter::new(
                    progress,
                    FilePos {
                        file: file2.into(),
                        offset: offset2,
                        skip: 0,
                    },
                );
                (
                    start,
                    Some((
                        snap_conn,
                        Some((progress.table.clone(), progress.after.clone())),
                    )),
                    Some(p.clone()),
                )
            }
            StartFrom::Position(
                p @ Position::MySql(MySqlPosition {
                    start: TxnStart::MariaDbGtid(state),
                    skip,
                }),
            ) => {
                config.gtid_positions = true;
                resume_gtid = Some((state.clone(), *skip));
                // No file yet: the server finds the transaction after this GTID state.
                (
                    FilePos {
                        file: "".into(),
                        offset: 4,
                        skip: 0,
                    },
                    None,
                    Some(p.clone()),
                )
            }
            other => (resolve_start(other, &logs)?, None, None),
        };
        let shown = match shown {
            Some(shown) => shown,
            None if config.gtid_positions => {
                let state: Option<Option<String>> = conn
                    .exec_first(
                        "SELECT BINLOG_GTID_POS(?, ?)",
                        (start.file.clone(), start.offset),
                    )
                    .await
                    .map_err(|e| map_err(&config, e))?;
                let list: MariaDbGtidList = state.flatten().unwrap_or_default().parse().map_err(
                    |e: stream_core::PositionParseError| SourceError::Other {
                        reason: format!("the server's GTID position: {e}"),
                        class: ErrorClass::Definite,
                    },
                )?;
                resume_gtid = Some((list.clone(), 0));
                Position::MySql(MySqlPosition {
                    start: TxnStart::MariaDbGtid(list),
                    skip: 0,
                })
            }
            None => start.position(),
        };
        let mut catalog = Catalog::load(&mut conn, |db, t| config.wants(db, t))
            .await
            .map_err(|e| map_err(&config, e))?;
        if let Some(state) = &config.schema_state {
            catalog
                .restore(state)
                .map_err(|reason| SourceError::Other {
                    reason,
                    class: ErrorClass::Definite,
                })?;
        }
        drop(conn);
        let (tx, rx) = mpsc::channel(2);
        let server_id = config.server_id.unwrap_or_else(unique_server_id);
        let reader = BinlogReader {
            config,
            info,
            server_id,
            catalog,
            resume: start.clone(),
            tx,
            shutdown,
            delivered_since_connect: false,
            view_filter,
            resume_gtid,
            state_pending: true,
        };
        tokio::spawn(reader.run(snapshot));
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Opened {
            start: shown,
            batches: Box::pin(batches),
        })
    }
}

/// The background task that owns the binlog connection.
struct BinlogReader {
    config: MySqlConfig,
    info: ServerInfo,
    server_id: u32,
    catalog: Catalog,
    /// Where to reconnect: the position after the last batch handed downstream.
    resume: FilePos,
    tx: mpsc::Sender<Result<Batch, SourceError>>,
    shutdown: CancellationToken,
    delivered_since_connect: bool,
    /// After resuming inside a snapshot: binlog changes already contained in the new view.
    view_filter: Option<ViewFilter>,
    /// GTID mode: the state and rows delivered that belong with `resume` (when `resume.file`
    /// is empty, the stream is requested by this GTID state).
    resume_gtid: Option<(MariaDbGtidList, u64)>,
    /// The table definitions changed (or were never sent): attach them to the next batch.
    state_pending: bool,
}

/// A snapshot resumed in a second consistent view (taken at `until`) already contains the
/// changes made between the first view and `until` to the tables it read: the table it
/// resumed in (keys after `after`) and every later table. Those binlog changes are skipped
/// until the stream reaches `until`, so the resume delivers nothing twice. Keys that cannot
/// be ordered like the server does (strings, under a collation) are not skipped: for them
/// the resume is at-least-once.
#[derive(Debug, Clone)]
struct ViewFilter {
    until: FilePos,
    table: String,
    after: Option<Vec<Value>>,
}

impl ViewFilter {
    fn new(progress: &SnapshotProgress, until: FilePos) -> Option<Self> {
        let after = match &progress.after {
            None => Some(Vec::new()),
            Some(json) => {
                let parsed: serde_json::Value = serde_json::from_str(json).ok()?;
                parsed
                    .as_object()?
                    .values()
                    .map(|v| match v {
                        serde_json::Value::Number(n) => n
                            .as_i64()
                            .map(Value::Int)
                            .or_else(|| n.as_u64().map(Value::UInt)),
                        _ => None,
                    })
                    .collect::<Option<Vec<Value>>>()
            }
        };
        Some(Self {
            until,
            table: progress.table.clone(),
            after,
        })
    }

    /// Whether the second view already holds this change.
    fn covers(&self, table: &str, key: Option<&Row>) -> bool {
        if table > self.table.as_str() {
            return true;
        }
        if table != self.table {
            return false;
        }
        match (&self.after, key) {
            (Some(after), _) if after.is_empty() => true,
            (Some(after), Some(key)) if key.len() == after.len() => {
                let order = key
                    .iter()
                    .zip(after)
                    .map(|((_, k), a)| k.compare(a))
                    .find(|o| o != &Some(std::cmp::Ordering::Equal))
                    .unwrap_or(Some(std::cmp::Ordering::Equal));
                order == Some(std::cmp::Ordering::Greater)
            }
            _ => false,
        }
    }
}

enum Stop {
    /// Shutdown requested or nobody listens any more.
    Done,
    Failed(SourceError),
}

impl From<SourceError> for Stop {
    fn from(e: SourceError) -> Self {
        Stop::Failed(e)
    }
}

/// A snapshot connection with its transaction open, and where to resume inside it.
type PendingSnapshot = (Conn, Option<(String, Option<String>)>);

impl BinlogReader {
    async fn run(mut self, snapshot: Option<PendingSnapshot>) {
        if let Some((conn, from)) = snapshot {
            match self.snapshot(conn, from).await {
                Ok(()) => {}
                Err(Stop::Done) => return,
                Err(Stop::Failed(e)) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            ..Backoff::default()
        };
        // Failed reconnects since the last one that delivered something.
        let mut failures: u32 = 0;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let stop = match self.stream_once().await {
                Ok(()) => Stop::Done,
                Err(stop) => stop,
            };
            if self.delivered_since_connect {
                failing_since = None;
                failures = 0;
            }
            match stop {
                Stop::Done => return,
                Stop::Failed(e) if e.class() == ErrorClass::Transient => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > self.config.reconnect_for {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                    failures = failures.saturating_add(1);
                    let delay = backoff.delay(failures);
                    tracing::warn!(error = %e, resume = %self.resume.position(), ?delay, "binlog connection lost; reconnecting");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Stop::Failed(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Sends a batch downstream; `false` when nobody listens any more or shutdown began.
    async fn send(&mut self, events: Vec<SourceEvent>, position: Position) -> bool {
        let state = self.state_pending.then(|| self.catalog.to_state());
        let batch = Batch {
            events,
            position,
            state,
        };
        let sent = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            sent = self.tx.send(Ok(batch)) => sent.is_ok(),
        };
        if sent {
            self.state_pending = false;
        }
        sent
    }

    /// Sends a binlog batch and remembers its position for reconnects.
    async fn deliver(
        &mut self,
        events: Vec<SourceEvent>,
        position: FilePos,
        shown: Position,
        gtid: Option<(MariaDbGtidList, u64)>,
    ) -> bool {
        let sent = self.send(events, shown).await;
        if sent {
            self.resume = position;
            if gtid.is_some() {
                self.resume_gtid = gtid;
            }
            self.delivered_since_connect = true;
        }
        sent
    }

    /// Reads the selected tables from the open snapshot, then hands over to the binlog at the
    /// snapshot's position.
    async fn snapshot(
        &mut self,
        mut conn: Conn,
        from: Option<(String, Option<String>)>,
    ) -> Result<(), Stop> {
        let ts_ms = stream_core::now_ms();
        let catalog = self.catalog.clone();
        let config = self.config.clone();
        let read = crate::snapshot::SnapshotRead {
            config: &config,
            catalog: &catalog,
            file: self.resume.file.to_string(),
            offset: self.resume.offset,
            from: from.clone(),
            ts_ms,
        };
        let tables = read.tables();
        tracing::info!(tables = tables.len(), "snapshot started");
        for (name, schema) in tables {
            let full = format!("{}.{}", name.0, name.1);
            let mut after = match &from {
                Some((t, a)) if *t == full => a.clone(),
                _ => None,
            };
            let mut rows = 0usize;
            loop {
                let events = read
                    .chunk(&mut conn, &name, &schema, after.as_deref(), rows)
                    .await?;
                let Some(last) = events.last() else { break };
                let position = last.position().clone();
                if let Position::MySql(MySqlPosition {
                    start: TxnStart::Snapshot(p),
                    ..
                }) = &position
                {
                    after.clone_from(&p.after);
                }
                rows += events.len();
                let full_chunk = events.len() >= 5000;
                if !self.send(events, position).await {
                    return Err(Stop::Done);
                }
                tracing::info!(table = %full, rows, "snapshot progress");
                if !full_chunk {
                    break;
                }
            }
            tracing::info!(table = %full, rows, "snapshot of table done");
        }
        conn.query_drop("COMMIT")
            .await
            .map_err(|e| map_err(&self.config, e))?;
        drop(conn);
        let handover = self.resume.clone();
        let shown = handover.position();
        if !self.deliver(Vec::new(), handover, shown, None).await {
            return Err(Stop::Done);
        }
        tracing::info!(position = %self.resume.position(), "snapshot done; streaming the binlog");
        Ok(())
    }

    /// Hands `batch` over with the tracker's position; `None` when nobody listens any more.
    async fn flush(&mut self, tracker: &Tracker, batch: &mut Vec<SourceEvent>) -> Option<FilePos> {
        let position = tracker.current.clone();
        let shown = tracker.emit_position();
        let gtid = tracker.gtid_mode.then(|| tracker.gtid_resume());
        self.deliver(std::mem::take(batch), position.clone(), shown, gtid)
            .await
            .then_some(position)
    }

    async fn stream_once(&mut self) -> Result<(), Stop> {
        self.delivered_since_connect = false;
        let config = self.config.clone();
        let mut conn = connect(&config).await?;
        let logs = binary_logs(&config, &mut conn).await?;
        let by_gtid = self.resume.file.is_empty();
        if by_gtid {
            let (state, _) = self.resume_gtid.clone().unwrap_or_default();
            for sql in [
                format!("SET @slave_connect_state = '{state}'"),
                "SET @slave_gtid_strict_mode = 0".to_owned(),
                "SET @slave_gtid_ignore_duplicates = 0".to_owned(),
            ] {
                conn.query_drop(sql)
                    .await
                    .map_err(|e| map_err(&config, e))?;
            }
        } else {
            // The file may have been purged while we were away.
            resolve_start(&StartFrom::Position(self.resume.position()), &logs)?;
            if config.gtid_positions && self.resume_gtid.is_none() {
                let state: Option<Option<String>> = conn
                    .exec_first(
                        "SELECT BINLOG_GTID_POS(?, ?)",
                        (self.resume.file.clone(), self.resume.offset),
                    )
                    .await
                    .map_err(|e| map_err(&config, e))?;
                let state = state.flatten().unwrap_or_default();
                let list = state
                    .parse()
                    .map_err(|e: stream_core::PositionParseError| SourceError::Other {
                        reason: format!("the server's GTID position: {e}"),
                        class: ErrorClass::Definite,
                    })?;
                self.resume_gtid = Some((list, self.resume.skip));
            }
        }
        for sql in [
            // Heartbeats every second keep an idle connection provably alive.
            "SET @master_heartbeat_period = 1000000000",
            // MariaDB: send GTID events (capability 4) instead of fake BEGIN queries.
            "SET @mariadb_slave_capability = 4",
        ] {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err(&config, e))?;
        }
        let file = self.resume.file.clone();
        let request = BinlogStreamRequest::new(self.server_id)
            .with_filename(file.as_bytes())
            .with_pos(self.resume.offset);
        let mut stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| map_err(&config, e))?;
        let mut tracker = Tracker::new(&self.resume, self.info.checksum);
        tracker.view_filter = self.view_filter.clone();
        tracker.gtid_mode = config.gtid_positions;
        if let Some((state, skip)) = &self.resume_gtid {
            tracker.gtid_state = state.clone();
            if by_gtid && *skip > 0 {
                tracker.skip_gtid = Some((state.clone(), *skip));
            }
        }
        let mut batch: Vec<SourceEvent> = Vec::new();
        let mut last_sent = self.resume.clone();
        loop {
            let next = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Ok(()),
                next = stream.next() => next,
            };
            let mut next = Some(next);
            while let Some(item) = next.take() {
                let Some(event) = item else {
                    return Err(Stop::Failed(SourceError::ConnectionLost {
                        reason: "the server ended the binlog stream".into(),
                    }));
                };
                let event = event.map_err(|e| match map_err(&config, e) {
                    SourceError::Other { reason, .. }
                        if reason.contains("Could not find GTID state") =>
                    {
                        SourceError::PositionPurged {
                            requested: self.resume_gtid.as_ref().map_or_else(
                                String::new,
                                |(s, k)| {
                                    Position::MySql(MySqlPosition {
                                        start: TxnStart::MariaDbGtid(s.clone()),
                                        skip: *k,
                                    })
                                    .to_string()
                                },
                            ),
                            oldest: format!(
                                "the GTID state at the start of {}",
                                logs.first().map_or("", |l| l.0.as_str())
                            ),
                        }
                    }
                    SourceError::Other { reason, .. }
                        if reason.contains("Could not find first log file") =>
                    {
                        SourceError::PositionPurged {
                            requested: self.resume.position().to_string(),
                            oldest: logs.first().map_or_else(String::new, |l| {
                                Position::binlog(l.0.clone(), 4, 0).to_string()
                            }),
                        }
                    }
                    other => other,
                })?;
                tracker.handle(&event, &config, &mut self.catalog, &mut batch)?;
                if std::mem::take(&mut tracker.schema_changed) {
                    self.state_pending = true;
                }
                if batch.len() >= MAX_BATCH {
                    let Some(sent) = self.flush(&tracker, &mut batch).await else {
                        return Ok(());
                    };
                    last_sent = sent;
                }
                next = stream.next().now_or_never();
            }
            // Nothing more is ready: hand over what we have, or just the new position.
            if !batch.is_empty() || tracker.current != last_sent || self.state_pending {
                let Some(sent) = self.flush(&tracker, &mut batch).await else {
                    return Ok(());
                };
                last_sent = sent;
            }
        }
    }
}

/// An open transaction (or event group).
#[derive(Debug, Clone)]
struct Txn {
    start: u64,
    /// Wanted row changes seen so far in this transaction.
    ordinal: u64,
    id: Option<Arc<str>>,
    /// MariaDB standalone group (DDL): ends after its one statement.
    standalone: bool,
}

/// What a TABLE_MAP resolved to.
enum TableEntry {
    Wanted(Arc<TableDecoder>),
    Unwanted,
}

/// Follows files, transactions and table maps; turns row events into change events.
struct Tracker {
    file: Arc<str>,
    committed: FilePos,
    /// The resume position after everything handled so far.
    current: FilePos,
    txn: Option<Txn>,
    /// Rows of the transaction at this position that were delivered before (resume).
    skip: Option<FilePos>,
    suppress: u64,
    checksum: bool,
    seen_fde: bool,
    last_table_map_start: u64,
    tables: HashMap<u64, (Vec<u8>, TableEntry)>,
    view_filter: Option<ViewFilter>,
    /// Emit MariaDB GTID positions instead of file positions.
    gtid_mode: bool,
    /// GTID state after the last committed transaction.
    gtid_state: MariaDbGtidList,
    /// The open transaction's GTID, applied to the state at commit.
    txn_gtid: Option<MariaDbGtid>,
    /// Rows already delivered of the transaction that follows this GTID state (GTID resume).
    skip_gtid: Option<(MariaDbGtidList, u64)>,
    /// A DDL statement changed the known table definitions.
    schema_changed: bool,
}

fn parse_err(what: &str, position: &FilePos, e: impl std::fmt::Display) -> SourceError {
    SourceError::Decode {
        table: "(binlog)".into(),
        column: what.into(),
        position: position.position().to_string(),
        reason: e.to_string(),
    }
}

impl Tracker {
    fn new(resume: &FilePos, checksum: bool) -> Self {
        let committed = FilePos {
            skip: 0,
            ..resume.clone()
        };
        Self {
            file: resume.file.clone(),
            current: resume.clone(),
            committed,
            txn: None,
            skip: (resume.skip > 0).then(|| resume.clone()),
            suppress: 0,
            checksum,
            seen_fde: false,
            last_table_map_start: resume.offset,
            tables: HashMap::new(),
            view_filter: None,
            gtid_mode: false,
            gtid_state: MariaDbGtidList::default(),
            txn_gtid: None,
            skip_gtid: None,
            schema_changed: false,
        }
    }

    /// The position to show for what was handled so far (GTID or file form).
    fn emit_position(&self) -> Position {
        if !self.gtid_mode {
            return self.current.position();
        }
        let (state, skip) = self.gtid_resume();
        Position::MySql(MySqlPosition {
            start: TxnStart::MariaDbGtid(state),
            skip,
        })
    }

    /// GTID state before the open transaction and its rows handled, or the state now.
    fn gtid_resume(&self) -> (MariaDbGtidList, u64) {
        let skip = self.txn.as_ref().map_or(0, |t| t.ordinal);
        (self.gtid_state.clone(), skip)
    }

    fn begin(&mut self, start: u64, id: Option<Arc<str>>, standalone: bool) {
        self.suppress = 0;
        if let Some(skip) = self.skip.take()
            && skip.file == self.file
            && skip.offset == start
        {
            self.suppress = skip.skip;
        }
        if let Some((state, rows)) = self.skip_gtid.take()
            && state == self.gtid_state
        {
            self.suppress = rows;
        }
        self.txn = Some(Txn {
            start,
            ordinal: 0,
            id,
            standalone,
        });
    }

    fn commit(&mut self, end: u64) {
        self.txn = None;
        self.suppress = 0;
        if let Some(gtid) = self.txn_gtid.take() {
            self.gtid_state.apply(gtid);
        }
        self.committed = FilePos {
            file: self.file.clone(),
            offset: end,
            skip: 0,
        };
        self.current = self.committed.clone();
        if self.view_filter.as_ref().is_some_and(|f| {
            self.committed
                .position()
                .compare(&f.until.position())
                .is_some_and(|o| o.is_ge())
        }) {
            self.view_filter = None;
        }
    }

    fn handle(
        &mut self,
        event: &mysql_async::binlog::events::Event,
        config: &MySqlConfig,
        catalog: &mut Catalog,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let kind = header.event_type_raw();
        let end = u64::from(header.log_pos());
        let artificial = end == 0 || header.flags().contains(EventFlags::LOG_EVENT_ARTIFICIAL_F);
        let start = end.saturating_sub(u64::from(header.event_size()));
        let data = event.data();
        let ts_ms = i64::from(header.timestamp()) * 1000;
        match kind {
            event_type::ROTATE => {
                let mut r = Reader::new(data);
                let pos = r
                    .uint_le(8, "rotate position")
                    .map_err(|e| parse_err("rotate", &self.current, e))?;
                let mut name = r.rest();
                // The first (fake) rotate is read before the format description is known, so
                // its checksum is still attached to the file name.
                if !self.seen_fde && self.checksum && name.len() > 4 {
                    name = &name[..name.len() - 4];
                }
                self.file = String::from_utf8_lossy(name).as_ref().into();
                if self.txn.is_none() {
                    self.committed = FilePos {
                        file: self.file.clone(),
                        offset: pos,
                        skip: 0,
                    };
                    self.current = self.committed.clone();
                }
            }
            event_type::FORMAT_DESCRIPTION => self.seen_fde = true,
            event_type::MARIADB_GTID => {
                let mut r = Reader::new(data);
                let seq = r
                    .uint_le(8, "GTID sequence")
                    .map_err(|e| parse_err("gtid", &self.current, e))?;
                let domain = r
                    .uint_le(4, "GTID domain")
                    .map_err(|e| parse_err("gtid", &self.current, e))?;
                let flags = r
                    .u8("GTID flags")
                    .map_err(|e| parse_err("gtid", &self.current, e))?;
                let id: Arc<str> = format!("{domain}-{}-{seq}", header.server_id()).into();
                if !artificial {
                    self.begin(start, Some(id), flags & 1 != 0);
                    self.txn_gtid = Some(MariaDbGtid {
                        domain: domain as u32,
                        server: header.server_id(),
                        sequence: seq,
                    });
                }
            }
            event_type::MARIADB_GTID_LIST if self.txn.is_none() => {
                let mut r = Reader::new(data);
                let count = r
                    .uint_le(4, "GTID list count")
                    .map_err(|e| parse_err("gtid list", &self.current, e))?
                    & 0x0fff_ffff;
                let mut list = MariaDbGtidList::default();
                for _ in 0..count {
                    let domain = r
                        .uint_le(4, "GTID domain")
                        .map_err(|e| parse_err("gtid list", &self.current, e))?;
                    let server = r
                        .uint_le(4, "GTID server")
                        .map_err(|e| parse_err("gtid list", &self.current, e))?;
                    let sequence = r
                        .uint_le(8, "GTID sequence")
                        .map_err(|e| parse_err("gtid list", &self.current, e))?;
                    list.apply(MariaDbGtid {
                        domain: domain as u32,
                        server: server as u32,
                        sequence,
                    });
                }
                if !list.is_empty() {
                    self.gtid_state = list;
                }
            }
            event_type::MYSQL_GTID | event_type::MYSQL_ANONYMOUS_GTID => {
                let id = if kind == event_type::MYSQL_GTID && data.len() >= 25 {
                    let sid = &data[1..17];
                    let gno = i64::from_le_bytes(data[17..25].try_into().unwrap_or([0; 8]));
                    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                    Some(
                        format!(
                            "{}-{}-{}-{}-{}:{gno}",
                            &hex[0..8],
                            &hex[8..12],
                            &hex[12..16],
                            &hex[16..20],
                            &hex[20..32]
                        )
                        .into(),
                    )
                } else {
                    None
                };
                if !artificial {
                    self.begin(start, id, false);
                }
            }
            event_type::QUERY => {
                let sql = query_text(data).map_err(|e| parse_err("query", &self.current, e))?;
                let word = sql
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                let upper = sql
                    .trim_start()
                    .get(..24)
                    .unwrap_or(sql.trim_start())
                    .to_ascii_uppercase();
                match word.as_str() {
                    "BEGIN" => {
                        if self.txn.is_none() {
                            self.begin(start, None, false);
                        }
                    }
                    "COMMIT" => self.commit(end),
                    "SAVEPOINT" | "RELEASE" => {}
                    "ROLLBACK" if upper.starts_with("ROLLBACK TO") => {}
                    "ROLLBACK" => self.commit(end),
                    "XA" if upper.starts_with("XA START") || upper.starts_with("XA BEGIN") => {
                        if self.txn.is_none() {
                            self.begin(start, None, false);
                        }
                    }
                    "XA" if upper.starts_with("XA END") => {}
                    _ => {
                        let db = query_db(data);
                        let changed = crate::ddl::apply(
                            &sql,
                            db.as_deref(),
                            |d, t| config.wants(d, t),
                            catalog,
                        );
                        if crate::ddl::is_table_ddl(&sql) {
                            // Cached decoders may describe the old definition: rebuild them.
                            self.tables.clear();
                            self.schema_changed = true;
                        }
                        if let Some((namespace, kind)) = changed {
                            out.push(SourceEvent::Schema(SchemaChange {
                                source: SourceKind::MySql,
                                namespace,
                                kind,
                                statement: Some(sql.clone()),
                                position: FilePos {
                                    file: self.file.clone(),
                                    offset: end,
                                    skip: 0,
                                }
                                .position(),
                                ts_ms,
                            }));
                        }
                        // DDL commits implicitly; a statement inside a transaction does not.
                        if self
                            .txn
                            .as_ref()
                            .is_none_or(|t| t.standalone || t.ordinal == 0)
                        {
                            self.commit(end);
                        }
                    }
                }
            }
            event_type::XID | event_type::XA_PREPARE => self.commit(end),
            event_type::TABLE_MAP => {
                self.last_table_map_start = start;
                let table_id = Reader::new(data)
                    .uint_le(6, "table id")
                    .map_err(|e| parse_err("table map", &self.current, e))?;
                if self
                    .tables
                    .get(&table_id)
                    .is_some_and(|(raw, _)| raw.as_slice() == data)
                {
                    return Ok(());
                }
                let map =
                    TableMap::parse(data).map_err(|e| parse_err("table map", &self.current, e))?;
                let entry =
                    if config.wants(&map.db, &map.table) {
                        let schema = catalog.table(&map.db, &map.table).cloned();
                        let decoder = TableDecoder::build(&map, schema.as_deref(), catalog)
                            .map_err(|m| SourceError::Schema {
                                table: format!("{}.{}", map.db, map.table),
                                position: self.current.position().to_string(),
                                reason: m.0,
                            })?;
                        TableEntry::Wanted(Arc::new(decoder))
                    } else {
                        TableEntry::Unwanted
                    };
                self.tables.insert(table_id, (data.to_vec(), entry));
            }
            event_type::WRITE_ROWS_V1
            | event_type::UPDATE_ROWS_V1
            | event_type::DELETE_ROWS_V1
            | event_type::WRITE_ROWS_V2
            | event_type::UPDATE_ROWS_V2
            | event_type::DELETE_ROWS_V2 => self.rows(kind, data, ts_ms, out)?,
            event_type::PARTIAL_UPDATE_ROWS => {
                return Err(SourceError::Unsupported {
                    what: "partial JSON updates (binlog_row_value_options=PARTIAL_JSON); unset it on the server".into(),
                });
            }
            event_type::MARIADB_QUERY_COMPRESSED
            | event_type::MARIADB_ROWS_COMPRESSED_FIRST
                ..=event_type::MARIADB_ROWS_COMPRESSED_LAST => {
                return Err(SourceError::Unsupported {
                    what: "MariaDB binlog compression (log_bin_compress=ON); turn it off on the server".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn rows(
        &mut self,
        kind: u8,
        data: &[u8],
        ts_ms: i64,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let here = self.current.clone();
        let bad = |e: crate::binary::Malformed| parse_err("rows event", &here, e);
        let mut r = Reader::new(data);
        let table_id = r.uint_le(6, "table id").map_err(bad)?;
        r.uint_le(2, "rows flags").map_err(bad)?;
        if kind >= event_type::WRITE_ROWS_V2 {
            let extra = r.uint_le(2, "extra data length").map_err(bad)? as usize;
            r.take(extra.saturating_sub(2), "extra data").map_err(bad)?;
        }
        let Some((_, entry)) = self.tables.get(&table_id) else {
            return Err(SourceError::Decode {
                table: format!("table id {table_id}"),
                column: "(rows)".into(),
                position: here.position().to_string(),
                reason: "row event without a preceding TABLE_MAP".into(),
            });
        };
        let TableEntry::Wanted(decoder) = entry else {
            return Ok(());
        };
        let decoder = decoder.clone();
        let count = r.lenenc("column count").map_err(bad)? as usize;
        let bitmap_len = count.div_ceil(8);
        let before_cols = r.take(bitmap_len, "columns bitmap").map_err(bad)?;
        let is_update = kind == event_type::UPDATE_ROWS_V1 || kind == event_type::UPDATE_ROWS_V2;
        let after_cols = if is_update {
            r.take(bitmap_len, "after-image columns bitmap")
                .map_err(bad)?
        } else {
            before_cols
        };
        if count > decoder.columns.len() {
            return Err(SourceError::Schema {
                table: decoder.namespace.to_string(),
                position: here.position().to_string(),
                reason: format!(
                    "row has {count} columns, TABLE_MAP {}",
                    decoder.columns.len()
                ),
            });
        }
        let present = |bits: &[u8]| {
            (0..count)
                .filter(|i| bits[i / 8] & (1 << (i % 8)) != 0)
                .count()
        };
        let (before_n, after_n) = (present(before_cols), present(after_cols));
        if self.txn.is_none() {
            // Rows outside BEGIN/COMMIT: the group starts at its TABLE_MAP.
            self.begin(self.last_table_map_start, None, false);
        }
        while !r.is_empty() {
            let decode = |r: &mut Reader<'_>, cols: &[u8], n: usize| {
                decoder
                    .decode_row(r, cols, n)
                    .map_err(|e| SourceError::Decode {
                        table: decoder.namespace.to_string(),
                        column: e.column,
                        position: here.position().to_string(),
                        reason: e.reason,
                    })
            };
            let (op, before, after) = match kind {
                event_type::WRITE_ROWS_V1 | event_type::WRITE_ROWS_V2 => {
                    (Op::Insert, None, Some(decode(&mut r, after_cols, after_n)?))
                }
                event_type::DELETE_ROWS_V1 | event_type::DELETE_ROWS_V2 => (
                    Op::Delete,
                    Some(decode(&mut r, before_cols, before_n)?),
                    None,
                ),
                _ => {
                    let b = decode(&mut r, before_cols, before_n)?;
                    let a = decode(&mut r, after_cols, after_n)?;
                    (Op::Update, Some(b), Some(a))
                }
            };
            let Some(txn) = self.txn.as_mut() else {
                continue;
            };
            txn.ordinal += 1;
            self.current = FilePos {
                file: self.file.clone(),
                offset: txn.start,
                skip: txn.ordinal,
            };
            if self.suppress > 0 {
                self.suppress -= 1;
                continue;
            }
            let key = after
                .as_ref()
                .or(before.as_ref())
                .and_then(|row: &Row| decoder.key_of(row));
            if let Some(filter) = &self.view_filter
                && filter.covers(&decoder.namespace.to_string(), key.as_ref())
            {
                continue;
            }
            out.push(SourceEvent::Change(ChangeEvent {
                source: SourceKind::MySql,
                namespace: Namespace::clone(&decoder.namespace),
                op,
                key,
                before,
                after,
                update: None,
                position: Position::MySql(MySqlPosition {
                    start: if self.gtid_mode {
                        TxnStart::MariaDbGtid(self.gtid_state.clone())
                    } else {
                        TxnStart::File {
                            file: self.file.clone(),
                            offset: txn.start,
                        }
                    },
                    skip: txn.ordinal,
                }),
                ts_ms,
                txn: txn.id.clone(),
            }));
        }
        Ok(())
    }
}

/// The SQL text of a QUERY event.
fn query_text(data: &[u8]) -> Result<String, crate::binary::Malformed> {
    let mut r = Reader::new(data);
    r.take(8, "thread id and exec time")?;
    let db_len = usize::from(r.u8("database name length")?);
    r.take(2, "error code")?;
    let status_len = r.uint_le(2, "status variables length")? as usize;
    r.take(status_len, "status variables")?;
    r.take(db_len + 1, "database name")?;
    Ok(String::from_utf8_lossy(r.rest()).into_owned())
}

/// The default database of a QUERY event.
fn query_db(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    r.take(8, "").ok()?;
    let db_len = usize::from(r.u8("").ok()?);
    r.take(2, "").ok()?;
    let status_len = r.uint_le(2, "").ok()? as usize;
    r.take(status_len, "").ok()?;
    let db = r.take(db_len, "").ok()?;
    (!db.is_empty()).then(|| String::from_utf8_lossy(db).into_owned())
}
