//! The polling fallback, for servers where replication is not allowed: rows whose change
//! column (an `updated_at`-style timestamp or a version counter) moved past the last value read.
//!
//! **What polling cannot do.** It sees the latest state of each changed row, not each change:
//! several updates between two polls arrive as one, and **deletes are never seen**. Every
//! event is an `update` with `before: null` (the previous state is unknown), even for new rows.
//! Rows are read in (change column, key) order after a safety lag, so a transaction that
//! commits late with an earlier timestamp is still seen unless it commits later than the lag.
//! Prefer the binlog source ([`crate::MySqlSource`]) wherever the server allows it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mysql_async::prelude::*;
use stream_core::{
    Batch, CancellationToken, ChangeEvent, Cron, ErrorClass, MySqlPosition, Namespace, Op, Opened,
    PollCursor, PollProgress, PollSchedule, Position, Reconnect, Retry, Source, SourceError,
    SourceEvent, SourceKind, StartFrom, TxnStart, Value,
};
use tokio::sync::mpsc;

use crate::MySqlConfig;
use crate::schema::{Catalog, TableSchema};
use crate::server::{check_database, connect, map_err};
use crate::values::{json_text, json_to_param, key_of, quote, row_from_query, to_param};

const CHUNK: usize = 5000;

/// Polls tables for rows whose change column moved (see the module docs for its limits).
#[derive(Debug, Clone)]
pub struct MySqlPollingSource {
    config: MySqlConfig,
    column: String,
    schedule: PollSchedule,
    safety_lag: Duration,
}

impl MySqlPollingSource {
    /// Polls the selected tables by `column` (e.g. `updated_at`), every second, reading rows
    /// older than one second.
    pub fn new(config: MySqlConfig, column: impl Into<String>) -> Self {
        Self {
            config,
            column: column.into(),
            schedule: PollSchedule::Every(Duration::from_secs(1)),
            safety_lag: Duration::from_secs(1),
        }
    }

    /// Time between polls.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.schedule = PollSchedule::Every(interval);
        self
    }

    /// Polls at the times a cron expression names (UTC) instead of every interval: once at
    /// start, then at each of those times.
    pub fn schedule(mut self, cron: Cron) -> Self {
        self.schedule = PollSchedule::Cron(cron);
        self
    }

    /// Rows are read only once their change column is this much older than the server clock
    /// (for a timestamp column), so slow transactions are not skipped.
    pub fn safety_lag(mut self, lag: Duration) -> Self {
        self.safety_lag = lag;
        self
    }
}

fn position(cursors: &BTreeMap<String, PollCursor>) -> Position {
    Position::MySql(MySqlPosition {
        start: TxnStart::Poll(PollProgress {
            cursors: cursors.clone(),
        }),
        skip: 0,
    })
}

struct Table {
    ns: Namespace,
    name: String,
    schema: Arc<TableSchema>,
    column: usize,
    timestamp: bool,
}

#[async_trait::async_trait]
impl Source for MySqlPollingSource {
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
        check_database(&config, &mut conn).await?;
        let catalog = Catalog::load(&mut conn, |db, t| config.wants(db, t))
            .await
            .map_err(|e| map_err(&config, e))?;
        let mut tables = Vec::new();
        let mut names: Vec<_> = catalog.tables.keys().cloned().collect();
        names.sort();
        for (db, table) in names {
            let schema = catalog.tables[&(db.clone(), table.clone())].clone();
            let name = format!("{db}.{table}");
            let column = schema
                .columns
                .iter()
                .position(|c| c.name == self.column)
                .ok_or_else(|| SourceError::Schema {
                    table: name.clone(),
                    position: "(polling)".into(),
                    reason: format!("has no change column `{}` to poll by", self.column),
                })?;
            if schema.primary_key.is_empty() {
                return Err(SourceError::Schema {
                    table: name,
                    position: "(polling)".into(),
                    reason:
                        "has no primary key; polling needs one to page through equal change values"
                            .into(),
                });
            }
            let timestamp = matches!(
                schema.columns[column].data_type.as_str(),
                "timestamp" | "datetime"
            );
            tables.push(Table {
                ns: Namespace::new(db.as_str(), table.as_str()),
                name,
                schema,
                column,
                timestamp,
            });
        }
        if tables.is_empty() {
            return Err(SourceError::Other {
                reason: "no table matches the include/exclude patterns".into(),
                class: ErrorClass::Definite,
            });
        }
        let mut cursors: BTreeMap<String, PollCursor> = BTreeMap::new();
        match from {
            StartFrom::Earliest | StartFrom::Snapshot => {}
            StartFrom::Latest => {
                conn.query_drop("SET time_zone = '+00:00'")
                    .await
                    .map_err(|e| map_err(&config, e))?;
                for t in &tables {
                    let sql = format!(
                        "SELECT MAX({}) FROM {}.{}",
                        quote(&self.column),
                        quote(&t.ns.db),
                        quote(&t.ns.table)
                    );
                    let row: Option<mysql_async::Row> = conn
                        .exec_first(sql, ())
                        .await
                        .map_err(|e| map_err(&config, e))?;
                    let max = row
                        .and_then(|r| r.unwrap().into_iter().next())
                        .unwrap_or(mysql_async::Value::NULL);
                    let value = crate::values::from_query(max, &t.schema.columns[t.column])
                        .map_err(|reason| SourceError::Schema {
                            table: t.name.clone(),
                            position: "(polling)".into(),
                            reason,
                        })?;
                    if !value.is_null() {
                        cursors.insert(
                            t.name.clone(),
                            PollCursor {
                                at: json_text(&value),
                                key: None,
                            },
                        );
                    }
                }
            }
            StartFrom::Position(Position::MySql(MySqlPosition {
                start: TxnStart::Poll(p),
                ..
            })) => cursors = p.cursors,
            StartFrom::Position(other) => {
                return Err(SourceError::Unsupported {
                    what: format!("polling from position {other} (only mysql-poll positions)"),
                });
            }
        }
        drop(conn);
        let start = position(&cursors);
        let (schedule, lag) = (self.schedule.clone(), self.safety_lag);
        let definitions = Some(catalog.to_state());
        let batches = crate::supervise::spawn_supervised("MySQL poller", 4, move |tx| {
            let poller = Poller {
                reconnect: crate::server::reconnect_policy(&config),
                definitions,
                config,
                tables,
                cursors,
                schedule,
                lag,
                tx,
                shutdown,
            };
            poller.run()
        });
        Ok(Opened { start, batches })
    }
}

struct Poller {
    config: MySqlConfig,
    tables: Vec<Table>,
    cursors: BTreeMap<String, PollCursor>,
    schedule: PollSchedule,
    lag: Duration,
    tx: mpsc::Sender<Result<Batch, SourceError>>,
    shutdown: CancellationToken,
    /// A poll that works restarts the `reconnect_for` window.
    reconnect: Reconnect,
    /// The table definitions, in the binlog source's state format, for the first batch: a
    /// consumer that creates tables (a PostgreSQL replica) takes their types from them.
    definitions: Option<serde_json::Value>,
}

impl Poller {
    async fn run(mut self) {
        let mut conn = None;
        loop {
            match self.attempt(&mut conn).await {
                Ok(true) => {
                    self.reconnect.progressed();
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(self.schedule.delay_from(SystemTime::now())) => {}
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    conn = None;
                    match self
                        .reconnect
                        .failed(e, &self.shutdown, "MySQL polling")
                        .await
                    {
                        Retry::Again => {}
                        Retry::Shutdown => return,
                        Retry::GiveUp(e) => {
                            let _ = self.tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Connects when needed, then polls every table once; `Ok(false)` when nobody listens.
    async fn attempt(&mut self, conn: &mut Option<mysql_async::Conn>) -> Result<bool, SourceError> {
        let c = match conn {
            Some(c) => c,
            None => {
                let mut c = connect(&self.config).await?;
                c.query_drop("SET time_zone = '+00:00'")
                    .await
                    .map_err(|e| map_err(&self.config, e))?;
                conn.insert(c)
            }
        };
        self.poll_once(c).await
    }

    /// One pass over every table; `Ok(false)` when nobody listens any more.
    async fn poll_once(&mut self, conn: &mut mysql_async::Conn) -> Result<bool, SourceError> {
        let now_ms = stream_core::now_ms();
        for i in 0..self.tables.len() {
            loop {
                let (events, full) = self.chunk(conn, i, now_ms).await?;
                if events.is_empty() {
                    break;
                }
                let batch = Batch {
                    events,
                    position: position(&self.cursors),
                    state: self.definitions.take(),
                };
                let sent = tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => false,
                    sent = self.tx.send(Ok(batch)) => sent.is_ok(),
                };
                if !sent {
                    return Ok(false);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(true)
    }

    async fn chunk(
        &mut self,
        conn: &mut mysql_async::Conn,
        i: usize,
        now_ms: i64,
    ) -> Result<(Vec<SourceEvent>, bool), SourceError> {
        let t = &self.tables[i];
        let col = &t.schema.columns[t.column];
        let change = quote(&col.name);
        let pk: Vec<String> = t
            .schema
            .primary_key
            .iter()
            .map(|&k| quote(&t.schema.columns[k].name))
            .collect();
        let order = format!("{change}, {}", pk.join(", "));
        let cols: Vec<String> = t.schema.columns.iter().map(|c| quote(&c.name)).collect();
        let bad = |reason: String| SourceError::Schema {
            table: t.name.clone(),
            position: "(polling)".into(),
            reason,
        };
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(cursor) = self.cursors.get(&t.name) {
            let at: serde_json::Value = serde_json::from_str(&cursor.at)
                .map_err(|e| bad(format!("cursor `{}`: {e}", cursor.at)))?;
            let at = json_to_param(&at, col).map_err(bad)?;
            match &cursor.key {
                None => {
                    conditions.push(format!("{change} > ?"));
                    params.push(at);
                }
                Some(key) => {
                    let key: serde_json::Value = serde_json::from_str(key)
                        .map_err(|e| bad(format!("cursor key `{key}`: {e}")))?;
                    let mut key_params = Vec::new();
                    for &k in &t.schema.primary_key {
                        let c = &t.schema.columns[k];
                        let v = key
                            .get(&c.name)
                            .ok_or_else(|| bad(format!("cursor key lacks `{}`", c.name)))?;
                        key_params.push(json_to_param(v, c).map_err(bad)?);
                    }
                    conditions.push(format!(
                        "({change} > ? OR ({change} = ? AND ({}) > ({})))",
                        pk.join(", "),
                        vec!["?"; pk.len()].join(", ")
                    ));
                    params.push(at.clone());
                    params.push(at);
                    params.extend(key_params);
                }
            }
        }
        if t.timestamp && !self.lag.is_zero() {
            conditions.push(format!("{change} <= NOW(6) - INTERVAL ? MICROSECOND"));
            params.push(to_param(&Value::Int(self.lag.as_micros() as i64)).map_err(bad)?);
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {} FROM {}.{}{filter} ORDER BY {order} LIMIT {CHUNK}",
            cols.join(", "),
            quote(&t.ns.db),
            quote(&t.ns.table)
        );
        let rows: Vec<mysql_async::Row> = conn
            .exec(sql, params)
            .await
            .map_err(|e| map_err(&self.config, e))?;
        let full = rows.len() >= CHUNK;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let after =
                row_from_query(row, &t.schema).map_err(|(column, reason)| SourceError::Decode {
                    table: t.name.clone(),
                    column,
                    position: position(&self.cursors).to_string(),
                    reason,
                })?;
            let key = key_of(&after, &t.schema);
            let at = after.get(&col.name).cloned().unwrap_or(Value::Null);
            self.cursors.insert(
                t.name.clone(),
                PollCursor {
                    at: json_text(&at),
                    key: key.as_ref().map(|k| json_text(&Value::Document(k.clone()))),
                },
            );
            events.push(SourceEvent::Change(ChangeEvent {
                source: SourceKind::MySql,
                namespace: t.ns.clone(),
                op: Op::Update,
                key,
                before: None,
                after: Some(after),
                update: None,
                position: position(&self.cursors),
                ts_ms: now_ms,
                txn: None,
            }));
        }
        Ok((events, full))
    }
}
