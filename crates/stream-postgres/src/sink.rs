//! The replica sink: batches of source events into PostgreSQL, whole source transactions per
//! target commit, the checkpoint in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use stream_core::{
    Batch, ChangeEvent, Checkpoint, Durable, Namespace, Position, SchemaChange, Sink, SinkBatch,
    SinkError, SinkEvent, SourceEvent,
};

use crate::checkpoint::{self, valid_pipeline};
use crate::config::{Deletes, Keyless, OnError, PostgresSinkConfig};
use crate::connect::connect;
use crate::error::PostgresError;
use crate::merge::{Rejection, Session};
use crate::rows::{NullCounts, TableBuffer, key_json};
use crate::schema::{SourceTable, TableName, tables_from_state};
use crate::table::{self, TableKind, TargetTable};
use crate::txn::commit_point;

/// One event to apply, whatever container it came in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item<'a> {
    Change(&'a ChangeEvent),
    Schema(&'a SchemaChange),
}

impl<'a> Item<'a> {
    /// The item of a source event; `None` for kinds of event this sink does not know.
    fn of(e: &'a SourceEvent) -> Option<Self> {
        match e {
            SourceEvent::Change(c) => Some(Item::Change(c)),
            SourceEvent::Schema(s) => Some(Item::Schema(s)),
            _ => None,
        }
    }

    /// The item of a sink event; `None` for kinds of event this sink does not know.
    fn of_sink(e: &'a SinkEvent) -> Option<Self> {
        match e {
            SinkEvent::Change(c) => Some(Item::Change(c)),
            SinkEvent::Schema(s) => Some(Item::Schema(s)),
            _ => None,
        }
    }

    fn position(&self) -> &'a Position {
        match self {
            Item::Change(c) => &c.position,
            Item::Schema(s) => &s.position,
        }
    }

    /// A copy to hold until its source transaction completes.
    fn to_held(self) -> SinkEvent {
        match self {
            Item::Change(c) => SinkEvent::Change(Arc::new(c.clone())),
            Item::Schema(s) => SinkEvent::Schema(Arc::new(s.clone())),
        }
    }
}

/// What one call committed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Applied {
    /// Where the source may resume now that this is durable in the target (written to
    /// `ustream.checkpoints` with the data when a pipeline is set), or `None` when nothing was
    /// committed (the batch only continued a source transaction that is still open).
    pub checkpoint: Option<Checkpoint>,
    /// Row changes applied (after collapsing several changes of one key to the last).
    pub changes: u64,
    /// Events held back because their source transaction is not complete yet.
    pub held: usize,
    /// Changes the target refused (`on_error: dead-letter`), for the dead-letter queue.
    pub rejected: Vec<Rejection>,
}

/// Tables and definitions as of the last commit; a failed transaction leaves them untouched.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    pub(crate) defs: HashMap<TableName, Arc<SourceTable>>,
    pub(crate) targets: HashMap<Namespace, Arc<TargetTable>>,
}

impl Known {
    /// Learns the definitions of tables not known yet from a source state.
    fn learn(&mut self, state: Option<&serde_json::Value>) {
        if let Some(state) = state {
            for (name, def) in tables_from_state(state) {
                self.defs.entry(name).or_insert_with(|| Arc::new(def));
            }
        }
    }
}

/// What one transaction did, merged into the sink's totals when it commits.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) changes: u64,
    pub(crate) nulls: NullCounts,
    pub(crate) rejected: Vec<Rejection>,
    pub(crate) skipped_updates: u64,
}

/// A PostgreSQL replica of the source's tables and collections. See the crate docs.
pub struct PostgresSink {
    pub(crate) name: String,
    pub(crate) config: PostgresSinkConfig,
    pub(crate) session: Option<Session>,
    pub(crate) pipeline: Option<String>,
    pub(crate) known: Known,
    /// Events of a source transaction that is not complete yet.
    held: Vec<SinkEvent>,
    /// The checkpoint stored in the target when this connection was made: batches up to it
    /// are in the target already (a commit whose acknowledgement was lost, or a pipeline that
    /// resumed from an earlier position for another sink's sake) and are skipped.
    applied_upto: Option<Position>,
    /// Source state not yet written with a checkpoint.
    pending_state: Option<serde_json::Value>,
    nulled: NullCounts,
    skipped_updates: u64,
    rejected: Vec<Rejection>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("pipeline", &self.pipeline)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// A sink with these settings; it connects on first use (and again after a failure).
    pub fn new(name: impl Into<String>, config: PostgresSinkConfig) -> Self {
        Self {
            name: name.into(),
            config,
            session: None,
            pipeline: None,
            known: Known::default(),
            held: Vec::new(),
            applied_upto: None,
            pending_state: None,
            nulled: NullCounts::new(),
            skipped_updates: 0,
            rejected: Vec::new(),
        }
    }

    /// Writes the checkpoint of `pipeline` into `ustream.checkpoints` in every data transaction
    /// (`checkpoints: postgres`): after a crash the target and its checkpoint agree, and the
    /// pipeline resumes exactly after the last commit.
    pub fn checkpoint_as(mut self, pipeline: impl Into<String>) -> Result<Self, PostgresError> {
        let pipeline = pipeline.into();
        if !valid_pipeline(&pipeline) {
            return Err(PostgresError::Statement {
                context: "configuring checkpoints".into(),
                reason: format!(
                    "invalid pipeline name `{pipeline}`: use letters, digits, `-`, `_` and `.`"
                ),
                class: stream_core::ErrorClass::Definite,
            });
        }
        self.pipeline = Some(pipeline);
        Ok(self)
    }

    /// The settings.
    pub fn config(&self) -> &PostgresSinkConfig {
        &self.config
    }

    /// Values written as NULL because PostgreSQL cannot hold them, by source table and reason
    /// (`zero_date`, `invalid_date`, `nul_byte`); also counted in the metric
    /// `ustream_postgres_values_nulled_total{table, reason}`.
    pub fn nulled_values(&self) -> Vec<(String, &'static str, u64)> {
        self.nulled
            .iter()
            .map(|((t, r), n)| (t.clone(), r.as_str(), *n))
            .collect()
    }

    /// MongoDB updates that carried no full document (the document was deleted before the
    /// source looked it up, or the source does not ask for full documents).
    pub fn skipped_updates(&self) -> u64 {
        self.skipped_updates
    }

    /// Changes refused by [`Sink::write`] under `on_error: dead-letter`, since the last call.
    pub fn take_rejected(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejected)
    }

    /// Events held back because their source transaction is still open.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Applies a source batch: schema changes, row changes and the checkpoint in one
    /// transaction, up to the last source transaction known to be complete. The events of a
    /// transaction still open at the batch's end are held until a later batch completes it.
    ///
    /// On `Err` nothing of the batch is applied and the sink is as before: call again with the
    /// same batch (after a backoff when the error is transient).
    pub async fn apply(&mut self, batch: &Batch) -> Result<Applied, PostgresError> {
        let fresh = batch
            .events
            .iter()
            .filter_map(Item::of)
            .map(|i| (i, None))
            .collect();
        self.apply_items(fresh, &batch.position, batch.state.as_ref())
            .await
            .map(|(applied, _)| applied)
    }

    /// [`Self::apply`] of the events `fresh` of a batch ending at `end` (each with the shared
    /// event it came from, if any, to hold without a copy); also says whether the whole batch
    /// was in the target already.
    async fn apply_items(
        &mut self,
        mut fresh: Vec<(Item<'_>, Option<&SinkEvent>)>,
        end: &Position,
        batch_state: Option<&serde_json::Value>,
    ) -> Result<(Applied, bool), PostgresError> {
        self.read_applied_upto().await?;
        // Definitions may come with a batch of no changes (the MySQL source's first one, when
        // it starts from a position): tables created later need them, whatever is committed now.
        self.known.learn(batch_state);
        if let Some(upto) = &self.applied_upto {
            let covered = |p: &Position| p.compare(upto).is_some_and(|o| o.is_le());
            if covered(end) {
                tracing::debug!(sink = %self.name, position = %end, "batch already in the target; skipped");
                self.held.clear();
                let applied = Applied {
                    checkpoint: Some(Checkpoint {
                        position: end.clone(),
                        state: batch_state.cloned(),
                    }),
                    ..Applied::default()
                };
                return Ok((applied, true));
            }
            fresh.retain(|(item, _)| !covered(item.position()));
            self.applied_upto = None;
        }
        let held = std::mem::take(&mut self.held);
        let (items, origins): (Vec<Item<'_>>, Vec<Option<&SinkEvent>>) = held
            .iter()
            .filter_map(|e| Item::of_sink(e).map(|i| (i, Some(e))))
            .chain(fresh)
            .unzip();
        let (commit_len, position) = commit_point(&items, end);
        let state = batch_state.cloned().or_else(|| self.pending_state.clone());
        let result = match position {
            Some(position) if commit_len == 0 && self.pipeline.is_none() => {
                // Only the position moved and nothing stores it here: no transaction needed.
                Ok(Some((
                    Some(Checkpoint {
                        position,
                        state: state.clone(),
                    }),
                    Outcome::default(),
                )))
            }
            Some(position) => {
                let checkpoint = Checkpoint {
                    position,
                    state: state.clone(),
                };
                self.transact(&items[..commit_len], Some(checkpoint), batch_state)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        };
        match result {
            Ok(done) => {
                let tail: Vec<SinkEvent> = items[commit_len..]
                    .iter()
                    .zip(&origins[commit_len..])
                    .map(|(item, origin)| origin.map_or_else(|| item.to_held(), SinkEvent::clone))
                    .collect();
                drop((items, origins));
                self.held = tail;
                let mut applied = Applied {
                    held: self.held.len(),
                    ..Applied::default()
                };
                match done {
                    Some((checkpoint, outcome)) => {
                        self.pending_state = None;
                        applied.checkpoint = checkpoint;
                        applied.changes = outcome.changes;
                        applied.rejected = outcome.rejected;
                    }
                    None => {
                        if state.is_some() {
                            self.pending_state = state;
                        }
                    }
                }
                Ok((applied, false))
            }
            Err(e) => {
                drop((items, origins));
                self.held = held;
                Err(e)
            }
        }
    }

    /// Reads the stored checkpoint once per connection (with `checkpoint_as`).
    async fn read_applied_upto(&mut self) -> Result<(), PostgresError> {
        let Some(pipeline) = self.pipeline.clone() else {
            return Ok(());
        };
        let session = self.session().await?;
        if session.checked {
            return Ok(());
        }
        let stored = checkpoint::read(&session.client, &pipeline, false).await?;
        session.checked = true;
        self.applied_upto = stored.map(|c| c.position);
        Ok(())
    }

    /// Connects when there is no live connection.
    pub(crate) async fn session(&mut self) -> Result<&mut Session, PostgresError> {
        if self.session.as_ref().is_none_or(|s| s.client.is_closed()) {
            let client = connect(&self.config.url, &format!("ustream-{}", self.name)).await?;
            // Staging tables live in temp buffers (8 MB by default); a large batch should not
            // spill them to disk. Settable only before the session's first temporary table.
            client
                .batch_execute("SET temp_buffers = '64MB'")
                .await
                .map_err(|e| PostgresError::from_driver("configuring the session", &e))?;
            if self.pipeline.is_some() {
                checkpoint::create_table(&client).await?;
            }
            self.session = Some(Session::new(client));
        }
        self.session.as_mut().ok_or_else(|| PostgresError::Connect {
            target: stream_core::redact_url(&self.config.url),
            reason: "no connection".into(),
        })
    }

    /// One target transaction: `items`, then the checkpoint (when a pipeline is set). Returns
    /// the checkpoint that is now durable and what was applied.
    async fn transact(
        &mut self,
        items: &[Item<'_>],
        checkpoint: Option<Checkpoint>,
        state: Option<&serde_json::Value>,
    ) -> Result<(Option<Checkpoint>, Outcome), PostgresError> {
        let mut known = self.known.clone();
        known.learn(state);
        let outcome = self.run(items, checkpoint.as_ref(), &mut known).await;
        match outcome {
            Ok(outcome) => {
                self.known = known;
                for ((table, reason), n) in &outcome.nulls {
                    metrics::counter!("ustream_postgres_values_nulled_total",
                        "table" => table.clone(), "reason" => reason.as_str())
                    .increment(*n);
                    *self.nulled.entry((table.clone(), *reason)).or_default() += n;
                }
                metrics::counter!("ustream_postgres_changes_total", "sink" => self.name.clone())
                    .increment(outcome.changes);
                self.skipped_updates += outcome.skipped_updates;
                Ok((checkpoint, outcome))
            }
            Err(e) => {
                if let Some(session) = self.session.take()
                    && !session.client.is_closed()
                {
                    // Ends the transaction; the next call reconnects with fresh staging tables.
                    let _ = session.client.batch_execute("ROLLBACK").await;
                }
                tracing::warn!(sink = %self.name, error = %e, "PostgreSQL transaction rolled back");
                Err(e)
            }
        }
    }

    /// The body of [`Self::transact`].
    async fn run(
        &mut self,
        items: &[Item<'_>],
        checkpoint: Option<&Checkpoint>,
        known: &mut Known,
    ) -> Result<Outcome, PostgresError> {
        let pipeline = self.pipeline.clone();
        let session = self.session().await?;
        session.begin();
        session
            .client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| PostgresError::from_driver("starting a transaction", &e))?;
        let stop_on_reject = self.config.on_error == OnError::Stop;
        let mut outcome = Outcome::default();
        let mut buffers: Vec<(Arc<TargetTable>, TableBuffer<'_>)> = Vec::new();
        let mut slot: HashMap<Namespace, usize> = HashMap::new();
        for item in items {
            match item {
                Item::Change(event) => {
                    let target = self.target_for(event, known).await?;
                    let i = *slot.entry(event.namespace.clone()).or_insert_with(|| {
                        buffers.push((target.clone(), TableBuffer::new()));
                        buffers.len() - 1
                    });
                    let (table, buffer) = &mut buffers[i];
                    match buffer.add(table, event) {
                        Ok(true) => {}
                        Ok(false) => outcome.skipped_updates += 1,
                        Err(unkeyed) => {
                            let rejection = PostgresError::Rejected {
                                table: event.namespace.to_string(),
                                key: key_json(unkeyed.event),
                                position: unkeyed.event.position.to_string(),
                                reason: unkeyed.reason,
                            };
                            if stop_on_reject {
                                return Err(rejection);
                            }
                            outcome.rejected.push(Rejection {
                                event: Arc::new((*event).clone()),
                                table: event.namespace.to_string(),
                                reason: rejection.to_string(),
                            });
                        }
                    }
                }
                Item::Schema(change) => {
                    self.flush_all(&mut buffers, &mut outcome).await?;
                    slot.clear();
                    self.apply_schema(change, known).await?;
                }
            }
        }
        self.flush_all(&mut buffers, &mut outcome).await?;
        let session = self.session().await?;
        // Pushed application events have no source position to resume from.
        if let (Some(pipeline), Some(checkpoint)) = (&pipeline, checkpoint)
            && !matches!(checkpoint.position, Position::App { .. })
        {
            checkpoint::write(&session.client, pipeline, checkpoint).await?;
        }
        session
            .client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| PostgresError::from_driver("committing", &e))?;
        Ok(outcome)
    }

    async fn flush_all(
        &mut self,
        buffers: &mut Vec<(Arc<TargetTable>, TableBuffer<'_>)>,
        outcome: &mut Outcome,
    ) -> Result<(), PostgresError> {
        let stop_on_reject = self.config.on_error == OnError::Stop;
        let session = self.session().await?;
        for (table, buffer) in buffers.drain(..) {
            let flushed = session.flush(&table, &buffer, stop_on_reject).await?;
            outcome.changes += flushed.applied;
            for (k, n) in flushed.nulls {
                *outcome.nulls.entry(k).or_default() += n;
            }
            outcome.rejected.extend(flushed.rejected);
        }
        Ok(())
    }

    /// The target schema of a source database.
    pub(crate) fn schema_of(&self, db: &str) -> String {
        self.config.schema.clone().unwrap_or_else(|| db.to_owned())
    }

    /// The target table of an event's namespace, created when missing.
    async fn target_for(
        &mut self,
        event: &ChangeEvent,
        known: &mut Known,
    ) -> Result<Arc<TargetTable>, PostgresError> {
        if let Some(t) = known.targets.get(&event.namespace) {
            return Ok(t.clone());
        }
        let ns = &event.namespace;
        let def = known
            .defs
            .get(&(ns.db.to_string(), ns.table.to_string()))
            .cloned();
        let spec = table::spec_for(
            event,
            def.as_deref(),
            self.schema_of(&ns.db),
            self.config.extracted(&ns.db, &ns.table),
            self.config.deletes == Deletes::Soft,
        );
        if spec.kind == TableKind::Append && self.config.keyless == Keyless::Refuse {
            return Err(PostgresError::Keyless {
                table: ns.to_string(),
            });
        }
        let session = self.session().await?;
        let target = table::ensure(&session.client, &spec).await?;
        known.targets.insert(ns.clone(), target.clone());
        Ok(target)
    }
}

#[async_trait::async_trait]
impl Sink for PostgresSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Applies exactly these events in one transaction (with the last event's position as the
    /// checkpoint when one is configured). The caller cuts at source transaction boundaries;
    /// [`PostgresSink::apply`] does that itself from the batch's position.
    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let name = self.name.clone();
        self.read_applied_upto()
            .await
            .map_err(|e| e.into_sink_error(&name))?;
        let mut items: Vec<Item<'_>> = events.iter().map(|e| Item::Change(e)).collect();
        if let Some(upto) = self.applied_upto.take() {
            items.retain(|i| !i.position().compare(&upto).is_some_and(|o| o.is_le()));
            if items.is_empty() {
                self.applied_upto = Some(upto);
                return Ok(());
            }
        }
        let checkpoint = Checkpoint::at(Position::clone(&last.position));
        match self.transact(&items, Some(checkpoint), None).await {
            Ok((_, outcome)) => {
                self.rejected.extend(outcome.rejected);
                Ok(())
            }
            Err(e) => Err(e.into_sink_error(&self.name)),
        }
    }

    /// [`PostgresSink::apply`] of the batch: whole source transactions only, with the
    /// checkpoint in the same transaction when one is configured; says how far the target
    /// holds the batch (the end of a source transaction still open is held for a later
    /// batch). Refused changes under `on_error: dead-letter` are kept for
    /// [`PostgresSink::take_rejected`].
    async fn write_batch(&mut self, batch: &SinkBatch) -> Result<Durable, SinkError> {
        let fresh = batch
            .events
            .iter()
            .filter_map(|e| Item::of_sink(e).map(|i| (i, Some(e))))
            .collect();
        let (applied, covered) = self
            .apply_items(fresh, &batch.position, batch.state.as_deref())
            .await
            .map_err(|e| e.into_sink_error(&self.name))?;
        self.rejected.extend(applied.rejected);
        Ok(match applied.checkpoint {
            _ if covered => Durable::All,
            Some(checkpoint) if checkpoint.position == batch.position => Durable::All,
            Some(checkpoint) => Durable::Upto(checkpoint.position),
            None => Durable::Held,
        })
    }

    async fn health_check(&mut self) -> Result<(), SinkError> {
        let name = self.name.clone();
        let session = self.session().await.map_err(|e| e.into_sink_error(&name))?;
        session
            .client
            .batch_execute("SELECT 1")
            .await
            .map_err(|e| PostgresError::from_driver("checking health", &e).into_sink_error(&name))
    }

    async fn shutdown(&mut self) -> Result<(), SinkError> {
        if !self.held.is_empty() {
            tracing::info!(sink = %self.name, held = self.held.len(),
                "shutting down inside a source transaction; it is read again from the checkpoint");
        }
        self.session = None;
        Ok(())
    }
}
