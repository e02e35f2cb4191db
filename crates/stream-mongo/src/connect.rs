//! Connecting: a client with the crate's defaults, the first `ping`, what a change stream
//! needs of the server, and what to warn about at first contact.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use mongodb::Client;
use mongodb::ServerType;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::event::EventHandler;
use mongodb::event::sdam::SdamEvent;
use mongodb::options::ClientOptions;
use stream_core::{CancellationToken, ErrorClass, Namespace, SourceError};
use tokio::sync::mpsc;

use crate::config::{FullDocument, MongoConfig, PreImages, Scope};
use crate::errors::{Purpose, classify, describe};

/// How long server selection waits unless the URI says otherwise (`serverSelectionTimeoutMS`):
/// shorter than the driver's 30 s, so that a wrong host is reported while the user waits.
pub(crate) const SELECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The server selection timeout in force for `config` when `default` is the caller's.
pub(crate) fn selection_timeout(config: &MongoConfig, default: Duration) -> Duration {
    config.uri_parts().selection_timeout.unwrap_or(default)
}

/// A client for `config` (not yet connected: the driver connects on first use), named
/// `ultimate-stream` to the server unless the URI names it.
pub(crate) async fn client(config: &MongoConfig, selection: Duration) -> Result<Client, String> {
    let options = options(config, selection).await?;
    Client::with_options(options).map_err(|e| invalid(config, selection, &e))
}

/// The options of [`client`].
async fn options(config: &MongoConfig, selection: Duration) -> Result<ClientOptions, String> {
    let mut options = ClientOptions::parse(config.uri())
        .await
        .map_err(|e| invalid(config, selection, &e))?;
    options
        .app_name
        .get_or_insert_with(|| "ultimate-stream".to_owned());
    options.server_selection_timeout.get_or_insert(selection);
    log_lost_servers(&mut options, config);
    Ok(options)
}

/// A URI or option the driver refuses, as one line.
fn invalid(config: &MongoConfig, selection: Duration, e: &DriverError) -> String {
    describe(
        e,
        config.uri_parts(),
        Some(selection),
        Purpose::Other,
        false,
    )
}

/// Errors after which the driver marks a server unknown though it still answers: a refused
/// login (AuthenticationFailed) and the replica-set state changes (NotWritablePrimary,
/// NotPrimaryNoSecondaryOk, InterruptedDueToReplStateChange, NotPrimaryOrSecondary,
/// PrimarySteppedDown).
const STILL_ANSWERS: [i32; 6] = [18, 10107, 13435, 11602, 13436, 189];

/// Logs a server that stops answering, and once it answers again. The driver resumes a change
/// stream by itself after one lost connection, so without these lines a server restart would
/// leave no trace in the log. The servers lost are kept for the process, so that the clients
/// of one source (or of several) that lose one server log it once.
fn log_lost_servers(options: &mut ClientOptions, config: &MongoConfig) {
    static LOST: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());
    let uri = config.uri_parts().clone();
    options.sdam_event_handler = Some(EventHandler::callback(move |event: SdamEvent| {
        let SdamEvent::ServerDescriptionChanged(change) = event else {
            return;
        };
        let was_known = change.previous_description.server_type() != ServerType::Unknown;
        let is_known = change.new_description.server_type() != ServerType::Unknown;
        let server = change.address.to_string();
        let Ok(mut lost) = LOST.lock() else {
            return;
        };
        if was_known && !is_known {
            let error = change.new_description.error();
            // A refused login is reported by the operation that tried it, with what to do; a
            // primary stepping down (or a member not yet primary) still answers.
            let not_lost = error.is_some_and(|e| match e.kind.as_ref() {
                ErrorKind::Authentication { .. } => true,
                ErrorKind::Command(c) => STILL_ANSWERS.contains(&c.code),
                _ => false,
            });
            if not_lost || lost.contains_key(&server) {
                return;
            }
            let error = error.map_or_else(
                || "none given".to_owned(),
                |e| describe(e, &uri, None, Purpose::Other, true),
            );
            tracing::warn!(%server, %error, "MongoDB server lost; the driver reconnects");
            lost.insert(server, Instant::now());
        } else if is_known && let Some(since) = lost.remove(&server) {
            // WARN like the line it ends, so that the default level shows both.
            tracing::warn!(%server, lost_for = ?since.elapsed(), "MongoDB server answers again");
        }
    }));
}

/// Connects and checks that the server answers and the credentials are accepted.
pub(crate) async fn connect(config: &MongoConfig, purpose: Purpose) -> Result<Client, SourceError> {
    let selection = selection_timeout(config, SELECTION_TIMEOUT);
    let options = options(config, selection)
        .await
        .map_err(|reason| refused_options(config, reason))?;
    connect_with(config, purpose, options, selection).await
}

/// [`connect`] for a change stream; also the client the stream is read with, built from the
/// same options without retryable reads.
///
/// The driver resumes a change stream by itself after a resumable error, once, with the token
/// of the last change. Its retry of that resume's `aggregate` (a retryable read) has lost the
/// token (mongodb 3.9: `ChangeStreamAggregate::build` takes it) and starts where the stream
/// first started: from its start position again (every change repeated), or, for a stream
/// opened at the latest change, after the changes made meanwhile (lost). Without read retries
/// that failure reaches the source, which reopens after the last change it handed over.
/// Snapshot reads, lookups and checks keep read retries on the first client.
pub(crate) async fn connect_for_change_stream(
    config: &MongoConfig,
) -> Result<(Client, Client), SourceError> {
    let selection = selection_timeout(config, SELECTION_TIMEOUT);
    let options = options(config, selection)
        .await
        .map_err(|reason| refused_options(config, reason))?;
    let mut streaming = options.clone();
    // Whatever the URI says.
    streaming.retry_reads = Some(false);
    let client = connect_with(config, Purpose::ChangeStream, options, selection).await?;
    match Client::with_options(streaming) {
        Ok(streaming) => Ok((client, streaming)),
        Err(e) => {
            close(client).await;
            Err(refused_options(config, invalid(config, selection, &e)))
        }
    }
}

fn refused_options(config: &MongoConfig, reason: String) -> SourceError {
    SourceError::Connect {
        target: config.uri_parts().hosts.clone(),
        reason,
        class: ErrorClass::Definite,
    }
}

async fn connect_with(
    config: &MongoConfig,
    purpose: Purpose,
    options: ClientOptions,
    selection: Duration,
) -> Result<Client, SourceError> {
    let client = Client::with_options(options)
        .map_err(|e| refused_options(config, invalid(config, selection, &e)))?;
    let pinged = client.database("admin").run_command(doc! {"ping": 1}).await;
    if let Err(e) = pinged {
        close(client).await;
        return Err(connect_error(config, &e, purpose));
    }
    Ok(client)
}

/// A failed first contact: `cannot connect to host:port: <what, what to do>`.
pub(crate) fn connect_error(
    config: &MongoConfig,
    e: &DriverError,
    purpose: Purpose,
) -> SourceError {
    SourceError::Connect {
        target: config.uri_parts().hosts.clone(),
        reason: describe(
            e,
            config.uri_parts(),
            Some(selection_timeout(config, SELECTION_TIMEOUT)),
            purpose,
            true,
        ),
        class: classify(e),
    }
}

/// Ends a client's background work (monitors, pools, clean-up of cursors and sessions already
/// dropped) while the runtime still runs: the driver's tasks panic when the runtime ends
/// under them. Waits for the clean-up a few seconds at most.
pub(crate) async fn close(client: Client) {
    const CLEAN_UP: Duration = Duration::from_secs(5);
    if tokio::time::timeout(CLEAN_UP, client.clone().shutdown())
        .await
        .is_err()
    {
        tracing::debug!("MongoDB clean-up took too long; closing without it");
        client.shutdown().immediate(true).await;
    }
}

/// [`close`] for several clients, at once: each may wait up to 5 s for a server that is gone.
pub(crate) async fn close_all(clients: Vec<Client>) {
    futures::future::join_all(clients.into_iter().map(close)).await;
}

/// Runs a source's reader task: `work` until it ends, shutdown begins or the consumer drops
/// the stream; then drops `work` (its cursors and sessions) and closes `client`. The stream
/// ends only after that (`keep_open` holds its channel open until then), so a caller that
/// cancels and reads the stream to its end (as the `Source` contract has it) knows that no
/// driver task outlives it.
pub(crate) fn spawn_reader<T: Send + 'static>(
    clients: Vec<Client>,
    keep_open: mpsc::Sender<T>,
    shutdown: CancellationToken,
    work: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = keep_open.closed() => {}
            () = work => {}
        }
        close_all(clients).await;
        drop(keep_open);
    });
}

/// Wanted `(db, collection)` pairs in name order: views, `system.*` collections and the
/// admin, local and config databases left out (they have no change events of their own).
/// An error says what was being listed.
pub(crate) async fn wanted_collections(
    client: &Client,
    config: &MongoConfig,
) -> Result<Vec<(String, String)>, (String, DriverError)> {
    let mut out = Vec::new();
    for db in wanted_databases(client, config).await? {
        let names = client
            .database(&db)
            .list_collection_names()
            .filter(doc! {"type": "collection"})
            .await
            .map_err(|e| (format!("listing collections of {db}"), e))?;
        out.extend(
            names
                .into_iter()
                .filter(|c| wanted_collection(config, &db, c))
                .map(|c| (db.clone(), c)),
        );
    }
    out.sort();
    Ok(out)
}

/// Databases whose collections may be wanted.
async fn wanted_databases(
    client: &Client,
    config: &MongoConfig,
) -> Result<Vec<String>, (String, DriverError)> {
    let dbs = match config.scope() {
        Scope::Database(db) | Scope::Collection(db, _) => vec![db],
        Scope::Deployment => client
            .list_database_names()
            .await
            .map_err(|e| ("listing databases".to_owned(), e))?,
    };
    Ok(dbs
        .into_iter()
        .filter(|db| !matches!(db.as_str(), "admin" | "local" | "config") && config.wants(db, ""))
        .collect())
}

fn wanted_collection(config: &MongoConfig, db: &str, coll: &str) -> bool {
    !coll.starts_with("system.") && config.wants(db, coll)
}

/// Wanted collections (in name order) that record no pre- and post-images.
async fn without_images(
    client: &Client,
    config: &MongoConfig,
) -> Result<Vec<(String, String)>, (String, DriverError)> {
    let mut out = Vec::new();
    for db in wanted_databases(client, config).await? {
        let listed = |e| (format!("listing collections of {db}"), e);
        // Whole answers: with `nameOnly` a filter cannot see the options.
        let mut specs = client
            .database(&db)
            .list_collections()
            .filter(doc! {"type": "collection"})
            .await
            .map_err(listed)?;
        while let Some(spec) = specs.next().await {
            let spec = spec.map_err(listed)?;
            let recorded = spec
                .options
                .change_stream_pre_and_post_images
                .is_some_and(|images| images.enabled);
            if !recorded && wanted_collection(config, &db, &spec.name) {
                out.push((db.clone(), spec.name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `pre_images: required` (and `full_document: required`) fail the stream at the first update
/// of a collection that records no images, with the server's words; this says so at open,
/// naming the collection and the fix. Collections created later are not checked.
pub(crate) async fn require_recorded_images(
    client: &Client,
    config: &MongoConfig,
) -> Result<(), SourceError> {
    let setting = match (config.pre_images, config.full_document) {
        (PreImages::Required, _) => "pre_images",
        (_, FullDocument::Required) => "full_document",
        _ => return Ok(()),
    };
    let missing = without_images(client, config)
        .await
        .map_err(|(what, e)| SourceError::Other {
            reason: format!(
                "checking which collections record pre- and post-images ({setting}: required): \
                 {what}: {}",
                describe(&e, config.uri_parts(), None, Purpose::Other, false)
            ),
            class: classify(&e),
        })?;
    let Some((db, coll)) = missing.first() else {
        return Ok(());
    };
    const NAMED: usize = 5;
    let mut names: Vec<String> = missing
        .iter()
        .take(NAMED)
        .map(|(db, coll)| format!("{db}.{coll}"))
        .collect();
    if missing.len() > NAMED {
        names.push(format!("{} more", missing.len() - NAMED));
    }
    let each = if missing.len() > 1 {
        " on each of them"
    } else {
        ""
    };
    let flag = setting.replace('_', "-");
    Err(SourceError::Prerequisite {
        setting: format!("changeStreamPreAndPostImages of {}", names.join(", ")),
        expected: format!("enabled for {setting}: required"),
        actual: format!(
            "off; enable it with db.getSiblingDB(\"{db}\").runCommand({{collMod: \"{coll}\", \
             changeStreamPreAndPostImages: {{enabled: true}}}}){each}, or accept changes without \
             images (`{setting}: when-available` in a config, `--{flag} when-available` for \
             `ustream tail`)"
        ),
    })
}

/// Change streams need the oplog: a replica set or a sharded cluster.
pub(crate) async fn require_change_streams(
    client: &Client,
    config: &MongoConfig,
) -> Result<(), SourceError> {
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| connect_error(config, &e, Purpose::ChangeStream))?;
    let replicated = hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid");
    if replicated {
        Ok(())
    } else {
        Err(SourceError::Prerequisite {
            setting: "replication".into(),
            expected: "a replica set or sharded cluster (change streams read the oplog)".into(),
            actual: "a standalone server (use MongoPollingSource, which cannot see deletes)".into(),
        })
    }
}

/// Warns when the URI's database is what is streamed and it holds no collection yet: a
/// database appears with its first write, so a misspelt name streams nothing, silently.
pub(crate) async fn warn_if_empty_database(client: &Client, config: &MongoConfig) {
    let Some(db) = config.database.as_deref() else {
        return;
    };
    if !config.filter.includes().is_empty() {
        // The patterns choose what is streamed; the URI's database is only where to log in.
        return;
    }
    let names = match client.database(db).list_collection_names().await {
        Ok(names) => names,
        Err(e) => {
            let error = describe(&e, config.uri_parts(), None, Purpose::Other, false);
            tracing::debug!(database = db, %error, "cannot list the collections");
            return;
        }
    };
    if !names.is_empty() {
        return;
    }
    let existing = client.list_database_names().await.map_or_else(
        |_| "(cannot list them)".to_owned(),
        |names| nearest(db, names),
    );
    tracing::warn!(
        database = db,
        existing = %existing,
        "the database holds no collections yet (a database appears with its first write): \
         check its name against the databases that exist"
    );
}

/// Databases to show: the names nearest to `wanted` first (a misspelling shows its fix), at
/// most ten, then how many more there are.
fn nearest(wanted: &str, mut names: Vec<String>) -> String {
    const SHOWN: usize = 10;
    names.sort_by_cached_key(|name| (edit_distance(wanted, name), name.clone()));
    let more = names.len().saturating_sub(SHOWN);
    names.truncate(SHOWN);
    let mut shown = names.join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    shown
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The cluster time of the oldest oplog entry.
pub(crate) async fn oldest_oplog_time(
    client: &Client,
    config: &MongoConfig,
) -> Result<Timestamp, String> {
    let first = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! {"$natural": 1})
        .projection(doc! {"ts": 1})
        .await
        .map_err(|e| {
            describe(
                &e,
                config.uri_parts(),
                Some(selection_timeout(config, SELECTION_TIMEOUT)),
                Purpose::ChangeStream,
                false,
            )
        })?;
    match first.as_ref().and_then(|d| d.get("ts")) {
        Some(Bson::Timestamp(ts)) => Ok(*ts),
        _ => Err("the oplog is empty or has no `ts`".to_owned()),
    }
}

/// The collections of the deployment this config would stream (views, `system.*` and the
/// admin, local and config databases left out; filtered by include/exclude), in name order:
/// what a pattern can match today.
pub async fn list_collections(config: &MongoConfig) -> Result<Vec<Namespace>, SourceError> {
    let client = connect(config, Purpose::Other).await?;
    let listed = wanted_collections(&client, config).await;
    close(client).await;
    let found = listed.map_err(|(what, e)| SourceError::Other {
        reason: format!(
            "{what}: {}",
            describe(&e, config.uri_parts(), None, Purpose::Other, false)
        ),
        class: classify(&e),
    })?;
    Ok(found
        .into_iter()
        .map(|(db, collection)| Namespace::new(db, collection))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_database_names_come_first() {
        assert_eq!(edit_distance("shop", "shpo"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("orders", "orders"), 0);
        let names: Vec<String> = (0..15)
            .map(|i| format!("db{i:02}"))
            .chain(["shop".to_owned()])
            .collect();
        let shown = nearest("shpo", names);
        assert!(shown.starts_with("shop, "), "{shown}");
        assert!(shown.ends_with(" and 6 more"), "{shown}");
        assert_eq!(nearest("x", vec!["a".into(), "b".into()]), "a, b");
    }
}
