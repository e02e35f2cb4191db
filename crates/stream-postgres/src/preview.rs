//! What the sink would do, without doing it: the statements that create the target tables
//! missing for a set of source events and table definitions (`ustream run --dry-run`).

use std::collections::BTreeMap;
use std::sync::Arc;

use stream_core::{ChangeEvent, Namespace, Op, SourceEvent, SourceKind};

use crate::checkpoint;
use crate::config::Deletes;
use crate::connect::connect;
use crate::error::PostgresError;
use crate::schema::tables_from_state;
use crate::sink::PostgresSink;
use crate::table::{self, TableKind};

impl PostgresSink {
    /// The statements this sink would run before writing `events`: the target tables missing
    /// for their namespaces and for the tables `state` defines (a MySQL source's definitions)
    /// that `wants(db, table)` selects, and `ustream.checkpoints` when `checkpoints` is set.
    /// Reads the target's catalog and writes nothing; a keyless table refused by `keyless:
    /// refuse` comes back as a comment saying so.
    pub async fn preview_ddl(
        &self,
        events: &[SourceEvent],
        state: Option<&serde_json::Value>,
        wants: impl Fn(&str, &str) -> bool,
        checkpoints: bool,
    ) -> Result<Vec<String>, PostgresError> {
        let client = connect(&self.config.url, &format!("ustream-{}-dry-run", self.name)).await?;
        let defs = state.map(tables_from_state).unwrap_or_default();
        // One event per namespace: its own first change, or a stand-in for a defined table.
        let mut firsts: BTreeMap<String, Arc<ChangeEvent>> = BTreeMap::new();
        for event in events {
            if let SourceEvent::Change(change) = event {
                firsts
                    .entry(change.namespace.to_string())
                    .or_insert_with(|| Arc::new(change.clone()));
            }
        }
        for (db, name) in defs.keys() {
            if wants(db, name) {
                let stand_in = ChangeEvent {
                    source: SourceKind::MySql,
                    namespace: Namespace::new(db.as_str(), name.as_str()),
                    op: Op::Insert,
                    key: None,
                    before: None,
                    after: None,
                    update: None,
                    position: stream_core::Position::binlog("preview.000001", 4, 0),
                    ts_ms: 0,
                    txn: None,
                };
                firsts
                    .entry(format!("{db}.{name}"))
                    .or_insert_with(|| Arc::new(stand_in));
            }
        }
        let mut statements = Vec::new();
        if checkpoints {
            statements.push(checkpoint::CREATE_SQL.to_owned());
        }
        for (shown, event) in firsts {
            let ns = &event.namespace;
            let def = defs.get(&(ns.db.to_string(), ns.table.to_string()));
            let spec = table::spec_for(
                &event,
                def,
                self.schema_of(&ns.db),
                self.config.extracted(&ns.db, &ns.table),
                self.config.deletes == Deletes::Soft,
            );
            if spec.kind == TableKind::Append
                && self.config.keyless == crate::config::Keyless::Refuse
            {
                statements.push(format!(
                    "-- {shown} has no primary key: refused (`keyless: refuse`); set `keyless: append` to keep its changes as rows"
                ));
                continue;
            }
            if table::load(&client, &spec).await?.is_none() {
                statements.push(table::create_sql(&spec));
            }
        }
        Ok(statements)
    }
}
