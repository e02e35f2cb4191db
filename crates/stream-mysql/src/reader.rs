//! The binlog reader: the background task that owns the replication connection, reads the
//! snapshot first when asked to, feeds binlog events to the [`Tracker`], hands batches
//! downstream and reconnects (`stream_core::Reconnect`) from the last position handed over.

use futures::{FutureExt as _, StreamExt as _};
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn};
use stream_core::{
    Batch, CancellationToken, MySqlPosition, Position, Reconnect, Retry, SourceError, SourceEvent,
    TxnStart,
};
use tokio::sync::mpsc;
use tokio::time::Duration;

use crate::MySqlConfig;
use crate::schema::Catalog;
use crate::server::{
    ServerInfo, binary_logs, code, connect, connect_error, connect_timed_out, map_err,
};
use crate::start::{PendingSnapshot, Resume, resolve_start};
use crate::tracker::{RawEvent, Tracker};
use crate::view_filter::ViewFilter;
use crate::wire::{Dial, WireConn, WireError, WireEvent, WireStream};

/// Most events in one batch; a batch is also flushed whenever the server has nothing more
/// ready, so latency stays low on a live stream.
const MAX_BATCH: usize = 1024;

/// A batch is also handed over once its row events hold this many bytes, and the reader
/// then waits until the consumer has taken it before reading on: large rows (a 64 MB cell)
/// are never held by more than one batch on each side of the channel.
const HEAVY_BATCH: usize = 16 * 1024 * 1024;

/// The server is asked for a heartbeat every second while idle.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);

/// How long the binlog connection may stay silent (not even a heartbeat) before it counts as
/// lost: a half-open connection (a NAT or firewall forgot it) sends no FIN and no RST.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// The background task that owns the binlog connection.
pub(crate) struct BinlogReader {
    pub(crate) config: MySqlConfig,
    pub(crate) info: ServerInfo,
    pub(crate) server_id: u32,
    pub(crate) catalog: Catalog,
    /// Where to reconnect: the position of the last batch handed downstream.
    pub(crate) resume: Resume,
    pub(crate) tx: mpsc::Sender<Result<Batch, SourceError>>,
    pub(crate) shutdown: CancellationToken,
    /// After resuming inside a snapshot: binlog changes already contained in the new view.
    pub(crate) view_filter: Option<ViewFilter>,
    /// The table definitions changed (or were never sent): attach them to the next batch
    /// that covers everything handled.
    pub(crate) state_pending: bool,
    /// A DDL statement was handled since the pending definitions were last true at every
    /// position: they may go only with a batch that covers everything handled. Until then
    /// (the definitions loaded at connect) any batch may carry them, so a consumer creating
    /// tables from them has them with the first rows, even mid-transaction.
    pub(crate) state_after_ddl: bool,
    pub(crate) reconnect: Reconnect,
}

enum Stop {
    /// Shutdown requested or nobody listens any more.
    Done,
    Failed(SourceError),
    /// Our own binlog client met what it cannot read: connect again through mysql_async.
    Fallback,
}

/// The binlog events of one connection: read by our own client ([`crate::wire`]), or by
/// mysql_async for what ours cannot serve (the memory bound for huge events then does not
/// hold: mysql_async holds an event about three times over).
enum Events {
    Wire(WireStream),
    Driver(mysql_async::BinlogStream),
}

enum Item {
    Wire(WireEvent),
    Driver(mysql_async::binlog::events::Event),
}

impl Events {
    /// The next event; cancel-safe (the wire client keeps a partly read packet).
    async fn next(&mut self) -> Option<Result<Item, WireError>> {
        match self {
            Events::Wire(s) => s.next().await.map(|r| r.map(Item::Wire)),
            Events::Driver(s) => {
                (s.next().await).map(|r| r.map(Item::Driver).map_err(WireError::Driver))
            }
        }
    }
}

/// MySQL's compressed transaction payload (`binlog_transaction_compression`), which only
/// mysql_async unpacks.
const TRANSACTION_PAYLOAD: u8 = 40;

impl From<SourceError> for Stop {
    fn from(e: SourceError) -> Self {
        Stop::Failed(e)
    }
}

impl BinlogReader {
    pub(crate) async fn run(mut self, snapshot: Option<PendingSnapshot>) {
        if let Some((conn, from)) = snapshot {
            match self.snapshot(conn, from).await {
                Ok(()) => {}
                Err(Stop::Done | Stop::Fallback) => return,
                Err(Stop::Failed(e)) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
        let mut via_wire = true;
        // A shutdown ends an attempt wherever it is (a connection being made included).
        let shutdown = self.shutdown.clone();
        loop {
            let once = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                once = self.stream_once(&mut via_wire) => once,
            };
            let e = match once {
                Ok(()) | Err(Stop::Done) => return,
                Err(Stop::Fallback) => continue,
                Err(Stop::Failed(e)) => e,
            };
            let resume = self.resume.position();
            tracing::debug!(error = %e, %resume, "binlog stream failed; the reconnect policy decides");
            match self.reconnect.failed(e, &self.shutdown, "binlog").await {
                Retry::Again => {}
                Retry::Shutdown => return,
                Retry::GiveUp(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Sends a batch resuming at `at`, with the table definitions when they changed and `at`
    /// covers everything handled (`complete`); `false` when nobody listens any more or
    /// shutdown began.
    async fn deliver(&mut self, events: Vec<SourceEvent>, at: Resume, complete: bool) -> bool {
        let state = (self.state_pending && (complete || !self.state_after_ddl))
            .then(|| self.catalog.to_state());
        let sent = self.send(events, at.position(), state).await;
        if sent {
            self.resume = at;
            self.reconnect.progressed();
        }
        sent
    }

    /// Sends one batch; `false` when nobody listens any more or shutdown began.
    async fn send(
        &mut self,
        events: Vec<SourceEvent>,
        position: Position,
        state: Option<serde_json::Value>,
    ) -> bool {
        let attached = state.is_some();
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
        if sent && attached {
            self.state_pending = false;
            self.state_after_ddl = false;
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
            file: self.resume.file.file.to_string(),
            offset: self.resume.file.offset,
            from: from.clone(),
            ts_ms,
        };
        let tables = read.tables();
        tracing::info!(tables = tables.len(), "snapshot started");
        if from.is_none() {
            // Its start, before any row: a stop before the first chunk's checkpoint resumes
            // this snapshot (and replays the binlog from its position) instead of taking a
            // new one that never tells of rows deleted in between.
            let state = self.state_pending.then(|| self.catalog.to_state());
            if !self.send(Vec::new(), read.start_position(), state).await {
                return Err(Stop::Done);
            }
        }
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
                let full_chunk = events.len() >= crate::snapshot::CHUNK;
                // Snapshot positions: no binlog resume point moves.
                let state = self.state_pending.then(|| self.catalog.to_state());
                if !self.send(events, position, state).await {
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
        if !self.deliver(Vec::new(), handover, true).await {
            return Err(Stop::Done);
        }
        tracing::info!(position = %self.resume.position(), "snapshot done; streaming the binlog");
        Ok(())
    }

    /// Waits until the consumer has taken every batch handed over; `false` when nobody
    /// listens any more or shutdown began.
    async fn drained(&self) -> bool {
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            all = self.tx.reserve_many(self.tx.max_capacity()) => all.is_ok(),
        }
    }

    /// Hands over the batch, at its last event's position; then, when `caught_up` and the
    /// tracker has moved past that (commits, filtered events, heartbeats), an empty batch at
    /// the tracker's position. `false` when nobody listens any more.
    async fn flush(
        &mut self,
        tracker: &Tracker,
        batch: &mut Vec<SourceEvent>,
        caught_up: bool,
    ) -> bool {
        let now = tracker.resume();
        if let Some(last) = batch.last() {
            let at = tracker.resume_after(last);
            let complete = at == now;
            if !self.deliver(std::mem::take(batch), at, complete).await {
                return false;
            }
        }
        if caught_up && (now != self.resume || self.state_pending) {
            return self.deliver(Vec::new(), now, true).await;
        }
        true
    }

    /// [`Self::flush`], then, after a heavy batch, waits until the consumer has taken it.
    async fn hand_over(
        &mut self,
        tracker: &Tracker,
        batch: &mut Vec<SourceEvent>,
        batch_bytes: &mut usize,
        caught_up: bool,
    ) -> bool {
        if !self.flush(tracker, batch, caught_up).await {
            return false;
        }
        std::mem::take(batch_bytes) < HEAVY_BATCH || self.drained().await
    }

    /// The error for a failed binlog read: a position the server does not have (code 1236)
    /// names the position asked for and the oldest there is.
    fn stream_error(&self, e: mysql_async::Error, logs: &[(String, u64)]) -> SourceError {
        match &e {
            mysql_async::Error::Server(se) if se.code == code::BINLOG_UNAVAILABLE => {
                tracing::warn!(code = se.code, message = %se.message, "the server cannot send the binlog from here");
                let first = logs.first().map_or("", |l| l.0.as_str());
                SourceError::PositionPurged {
                    requested: self.resume.position().to_string(),
                    oldest: if self.resume.by_gtid() {
                        format!("the GTID state at the start of {first}")
                    } else {
                        Position::binlog(first, 4, 0).to_string()
                    },
                }
            }
            _ => map_err(&self.config, e),
        }
    }

    /// The error for an event that could not be read.
    fn read_error(&self, e: WireError, logs: &[(String, u64)], tracker: &Tracker) -> SourceError {
        match e {
            WireError::Driver(e) => self.stream_error(e, logs),
            WireError::Checksum { start, reason } => SourceError::Decode {
                table: "(binlog)".into(),
                column: "(checksum)".into(),
                position: tracker.position_at(start).to_string(),
                reason,
            },
        }
    }

    /// Opens the binlog stream through our own client, or, when it cannot serve this
    /// connection (`via_wire` turns false), through mysql_async on `conn`.
    async fn open(
        &self,
        conn: Conn,
        settings: &[String],
        logs: &[(String, u64)],
        via_wire: &mut bool,
    ) -> Result<Events, Stop> {
        let config = &self.config;
        let file = self.resume.file.file.clone();
        let offset = self.resume.file.offset;
        if *via_wire {
            let dialed = tokio::time::timeout(config.connect_timeout, WireConn::dial(config))
                .await
                .map_err(|_| Stop::Failed(connect_timed_out(config)))?;
            match dialed {
                Ok(Dial::Open(mut wire)) => {
                    drop(conn);
                    for sql in settings {
                        wire.query_drop(sql).await.map_err(|e| map_err(config, e))?;
                    }
                    let stream = wire
                        .dump(self.server_id, file.as_bytes(), offset, self.info.checksum)
                        .await
                        .map_err(|e| self.stream_error(e, logs))?;
                    return Ok(Events::Wire(stream));
                }
                Ok(Dial::Unsupported(why)) => {
                    tracing::debug!(
                        why,
                        "the binlog is read through mysql_async (huge events then take about three times their size in memory)"
                    );
                    *via_wire = false;
                }
                Err(e) => return Err(Stop::Failed(connect_error(config, e))),
            }
        }
        let mut conn = conn;
        for sql in settings {
            conn.query_drop(sql).await.map_err(|e| map_err(config, e))?;
        }
        let request = BinlogStreamRequest::new(self.server_id)
            .with_filename(file.as_bytes())
            .with_pos(offset);
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| self.stream_error(e, logs))?;
        Ok(Events::Driver(stream))
    }

    async fn stream_once(&mut self, via_wire: &mut bool) -> Result<(), Stop> {
        let config = self.config.clone();
        // From the connection to the first event, bounded: a server that logs us in and
        // then stalls must not hold the attempt (and the reconnect window) for ever.
        let setup_limit = config.connect_timeout.saturating_mul(3);
        let setup = async {
            let mut conn = connect(&config).await?;
            let logs = binary_logs(&config, &mut conn).await?;
            let mut settings = Vec::new();
            if self.resume.by_gtid() {
                let (state, _) = self.resume.gtid.clone().unwrap_or_default();
                settings.extend([
                    format!("SET @slave_connect_state = '{state}'"),
                    "SET @slave_gtid_strict_mode = 0".to_owned(),
                    "SET @slave_gtid_ignore_duplicates = 0".to_owned(),
                ]);
            } else {
                // The file may have been purged while we were away.
                resolve_start(
                    &stream_core::StartFrom::Position(self.resume.file.position()),
                    &logs,
                )?;
            }
            settings.extend([
                // Heartbeats keep an idle connection provably alive (see `SILENCE_LIMIT`).
                format!(
                    "SET @master_heartbeat_period = {}",
                    HEARTBEAT_PERIOD.as_nanos()
                ),
                // MariaDB: send GTID events (capability 4) instead of fake BEGIN queries.
                "SET @mariadb_slave_capability = 4".to_owned(),
            ]);
            let stream = self.open(conn, &settings, &logs, via_wire).await?;
            Ok::<_, Stop>((logs, stream))
        };
        let (logs, mut stream) =
            tokio::time::timeout(setup_limit, setup)
                .await
                .map_err(|_| {
                    Stop::Failed(SourceError::ConnectionLost {
                        reason: format!(
                            "{} did not start the binlog stream within {} s of the connection \
                         attempt (3 x connect_timeout)",
                            config.endpoint(),
                            setup_limit.as_secs()
                        ),
                    })
                })??;
        // Still streaming `SILENCE_LIMIT` after the dump began: the connection is back, and
        // the next failure starts a new reconnect window even if nothing is delivered (an
        // idle database would otherwise keep the old window, and a loss of connection long
        // after would give up at once). Not sooner: a server that drops us again within
        // seconds (two readers with one server id) keeps counting towards the window.
        let streaming_since = tokio::time::Instant::now();
        let mut recovered = false;
        let mut tracker = Tracker::new(&self.resume, self.info.checksum, self.view_filter.clone());
        let mut batch: Vec<SourceEvent> = Vec::new();
        // Bytes of the binlog events whose rows are in `batch`.
        let mut batch_bytes = 0usize;
        loop {
            let next = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Ok(()),
                next = tokio::time::timeout(SILENCE_LIMIT, stream.next()) => match next {
                    Ok(next) => next,
                    Err(_) => return Err(Stop::Failed(SourceError::ConnectionLost {
                        reason: format!(
                            "nothing, not even a heartbeat, arrived from {} in {} s",
                            config.endpoint(),
                            SILENCE_LIMIT.as_secs()
                        ),
                    })),
                },
            };
            let mut next = Some(next);
            while let Some(item) = next.take() {
                let Some(event) = item else {
                    return Err(Stop::Failed(SourceError::ConnectionLost {
                        reason: format!(
                            "the server ended the binlog stream ({})",
                            config.endpoint()
                        ),
                    }));
                };
                let event = event.map_err(|e| self.read_error(e, &logs, &tracker))?;
                if !recovered && streaming_since.elapsed() >= SILENCE_LIMIT {
                    self.reconnect.progressed();
                    recovered = true;
                }
                let had = batch.len();
                // The event's bytes go before the next event is read.
                let size = match event {
                    Item::Wire(event) if event.kind() == TRANSACTION_PAYLOAD => {
                        tracing::debug!(
                            "compressed transaction payloads in the binlog: reading it through mysql_async from the last position handed over"
                        );
                        *via_wire = false;
                        return Err(Stop::Fallback);
                    }
                    Item::Wire(event) => {
                        let size = event.data_len();
                        tracker.handle_wire(event, &config, &mut self.catalog, &mut batch)?;
                        size
                    }
                    Item::Driver(event) => {
                        let raw = RawEvent::of(&event);
                        tracker.handle(raw, &config, &mut self.catalog, &mut batch)?;
                        event.data().len()
                    }
                };
                if batch.len() > had {
                    batch_bytes += size;
                }
                if tracker.take_schema_changed() {
                    self.state_pending = true;
                }
                if tracker.take_selected_schema_changed() {
                    self.state_after_ddl = true;
                }
                if (batch.len() >= MAX_BATCH || batch_bytes >= HEAVY_BATCH)
                    && !self
                        .hand_over(&tracker, &mut batch, &mut batch_bytes, false)
                        .await
                {
                    return Ok(());
                }
                next = stream.next().now_or_never();
            }
            // Nothing more is ready: hand over what we have, or just the new position.
            if !self
                .hand_over(&tracker, &mut batch, &mut batch_bytes, true)
                .await
            {
                return Ok(());
            }
        }
    }
}
