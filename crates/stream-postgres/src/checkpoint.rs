//! Checkpoints in PostgreSQL (`ustream.checkpoints`): the store the pipeline reads on start, and
//! the row the sink writes in the same transaction as the data.

use std::cmp::Ordering;

use stream_core::{Checkpoint, CheckpointError, CheckpointStore, Position};
use tokio_postgres::{Client, GenericClient};

use crate::connect::connect;
use crate::error::PostgresError;

/// Creates the schema and table once per connection.
pub(crate) const CREATE_SQL: &str = "CREATE SCHEMA IF NOT EXISTS ustream; \
    CREATE TABLE IF NOT EXISTS ustream.checkpoints (\
      pipeline text PRIMARY KEY, \
      position text NOT NULL, \
      state jsonb, \
      updated_at timestamptz NOT NULL DEFAULT now())";

/// Creates `ustream.checkpoints` when missing (outside a transaction), again once when
/// another session created it at the same moment (see [`crate::error::is_creation_race`]).
pub(crate) async fn create_table(client: &Client) -> Result<(), PostgresError> {
    let fail =
        |e: tokio_postgres::Error| PostgresError::from_driver("creating ustream.checkpoints", &e);
    match client.batch_execute(CREATE_SQL).await {
        Err(e) if crate::error::is_creation_race(&e) => {
            client.batch_execute(CREATE_SQL).await.map_err(fail)
        }
        other => other.map_err(fail),
    }
}

/// Upsert of one pipeline's checkpoint; a `NULL` state keeps the stored one.
const SAVE_SQL: &str = "INSERT INTO ustream.checkpoints AS c (pipeline, position, state, updated_at) \
    VALUES ($1, $2, $3::text::jsonb, now()) \
    ON CONFLICT (pipeline) DO UPDATE SET position = EXCLUDED.position, \
      state = COALESCE(EXCLUDED.state, c.state), updated_at = now()";

/// Pipeline names usable as keys: letters, digits, `-`, `_`, `.` (not leading), ≤ 200 bytes.
pub(crate) fn valid_pipeline(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads a pipeline's checkpoint (`FOR UPDATE` inside the sink's transaction).
pub(crate) async fn read(
    client: &impl GenericClient,
    pipeline: &str,
    lock: bool,
) -> Result<Option<Checkpoint>, PostgresError> {
    let sql = if lock {
        "SELECT position, state::text FROM ustream.checkpoints WHERE pipeline = $1 FOR UPDATE"
    } else {
        "SELECT position, state::text FROM ustream.checkpoints WHERE pipeline = $1"
    };
    let row = client
        .query_opt(sql, &[&pipeline])
        .await
        .map_err(|e| PostgresError::from_driver("reading the checkpoint", &e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let position: String = row.get(0);
    let state: Option<String> = row.get(1);
    let position: Position = position.parse().map_err(|e| PostgresError::Statement {
        context: format!("reading the checkpoint of `{pipeline}`"),
        reason: format!("{e}"),
        class: stream_core::ErrorClass::Definite,
    })?;
    let state = state
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| PostgresError::Statement {
            context: format!("reading the checkpoint state of `{pipeline}`"),
            reason: e.to_string(),
            class: stream_core::ErrorClass::Definite,
        })?;
    Ok(Some(Checkpoint { position, state }))
}

/// Writes a pipeline's checkpoint.
pub(crate) async fn write(
    client: &impl GenericClient,
    pipeline: &str,
    checkpoint: &Checkpoint,
) -> Result<(), PostgresError> {
    let state = checkpoint.state.as_ref().map(|s| s.to_string());
    client
        .execute(
            SAVE_SQL,
            &[&pipeline, &checkpoint.position.to_string(), &state],
        )
        .await
        .map_err(|e| PostgresError::from_driver("writing the checkpoint", &e))?;
    Ok(())
}

/// Checkpoints in `ustream.checkpoints` of a PostgreSQL database.
///
/// The same table the [`crate::PostgresSink`] writes in its data transactions, so a pipeline
/// whose sink is PostgreSQL loads its resume point from here.
pub struct PostgresCheckpointStore {
    url: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCheckpointStore")
            .field("url", &stream_core::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

fn io(e: PostgresError) -> CheckpointError {
    CheckpointError::Io {
        path: "ustream.checkpoints".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl PostgresCheckpointStore {
    /// A store at `url` (connects on first use, and again after a failure).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The stored checkpoint of `pipeline`, read without creating `ustream.checkpoints` when
    /// it is missing (`None` then): for looking without writing (`ustream run --dry-run`).
    pub async fn peek(&self, pipeline: &str) -> Result<Option<Checkpoint>, PostgresError> {
        let client = connect(&self.url, "ustream-checkpoints").await?;
        let exists = client
            .query_one("SELECT to_regclass('ustream.checkpoints') IS NOT NULL", &[])
            .await
            .map_err(|e| PostgresError::from_driver("looking for ustream.checkpoints", &e))?;
        if !exists.get::<_, bool>(0) {
            return Ok(None);
        }
        read(&client, pipeline, false).await
    }

    async fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, PostgresError>,
    ) -> Result<T, PostgresError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let client = connect(&self.url, "ustream-checkpoints").await?;
            create_table(&client).await?;
            *guard = Some(client);
        }
        let Some(client) = guard.as_mut() else {
            return Err(PostgresError::Connect {
                target: stream_core::redact_url(&self.url),
                reason: "no connection".into(),
            });
        };
        let out = f(client).await;
        if out.is_err() {
            *guard = None;
        }
        out
    }
}

#[async_trait::async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        if !valid_pipeline(pipeline) {
            return Err(CheckpointError::InvalidName {
                pipeline: pipeline.to_owned(),
            });
        }
        self.with_client(async |c| read(c, pipeline, false).await)
            .await
            .map_err(io)
    }

    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if !valid_pipeline(pipeline) {
            return Err(CheckpointError::InvalidName {
                pipeline: pipeline.to_owned(),
            });
        }
        let outcome = self
            .with_client(async |c| {
                let tx = c
                    .transaction()
                    .await
                    .map_err(|e| PostgresError::from_driver("saving the checkpoint", &e))?;
                let stored = read(&tx, pipeline, true).await?;
                if let Some(stored) = &stored
                    && checkpoint.position.compare(&stored.position) == Some(Ordering::Less)
                {
                    return Ok(Err(stored.position.to_string()));
                }
                write(&tx, pipeline, checkpoint).await?;
                tx.commit()
                    .await
                    .map_err(|e| PostgresError::from_driver("saving the checkpoint", &e))?;
                Ok(Ok(()))
            })
            .await
            .map_err(io)?;
        outcome.map_err(|stored| CheckpointError::Backwards {
            pipeline: pipeline.to_owned(),
            stored,
            attempted: checkpoint.position.to_string(),
        })
    }
}
