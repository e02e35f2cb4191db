//! Connection and change-stream settings, parsed from a `mongodb://` URI.

use std::time::Duration;

use stream_core::NamespaceFilter;

use crate::uri::{self, UriParts};

/// Why a configuration was rejected. Never contains the password (nor any part of it) or a
/// secret option value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MongoDB URI ({shown}): {reason}")]
pub struct ConfigError {
    /// The URI with its password and secret options replaced by `***`.
    pub shown: String,
    /// What is wrong.
    pub reason: String,
}

/// Whether update events carry the whole document after the change (`after`).
///
/// The default is [`FullDocument::UpdateLookup`], as with Debezium's MongoDB connector: an
/// update's `after` is the whole document, like an insert's and a replace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullDocument {
    /// Updates carry only the update description (`after` is `null`): the server does no
    /// lookup per update.
    Off,
    /// The document as it is *when the event is read*, which may be later than the change, or
    /// `null` if it was deleted since (MongoDB's `updateLookup`). The default.
    #[default]
    UpdateLookup,
    /// The post-image recorded at the change, where the collection has
    /// `changeStreamPreAndPostImages` enabled; else `null`.
    WhenAvailable,
    /// Like `WhenAvailable`, but the server fails the stream where the post-image is missing.
    Required,
}

/// Whether updates and deletes carry the document before the change (`before`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreImages {
    /// `before` is `null`.
    #[default]
    Off,
    /// The pre-image where the collection records them (`changeStreamPreAndPostImages`).
    WhenAvailable,
    /// The server fails the stream where a pre-image is missing.
    Required,
}

/// Where and how to watch.
#[derive(Clone)]
pub struct MongoConfig {
    uri: String,
    /// Hosts, and the secrets to keep out of messages.
    parts: UriParts,
    /// The database named in the URI path, if any.
    pub database: Option<String>,
    /// Which collections to stream; the URI's database alone selects `db.*` unless a filter is
    /// set. Applied to each event's `ns`, never to its document (deletes have none).
    pub filter: NamespaceFilter,
    /// `after` of update events (default: the whole document, looked up when read).
    pub full_document: FullDocument,
    /// `before` of update, replace and delete events.
    pub pre_images: PreImages,
    /// Ask the server to split events over 16 MB (`$changeStreamSplitLargeEvent`, MongoDB
    /// 6.0.9+/7.0+) and reassemble the fragments; without it such events fail the stream.
    pub split_large_events: bool,
    /// How long one `getMore` waits for new events; bounds the delay of a quiet stream's
    /// position updates and of noticing shutdown.
    pub max_await: Duration,
    /// Documents per snapshot chunk (one query each).
    pub snapshot_chunk: u32,
    /// How long to keep reconnecting after the connection drops before giving up.
    pub reconnect_for: Duration,
    /// Whether [`MongoStore`](crate::MongoStore) may read and write MongoDB's own namespaces:
    /// the `local` and `config` databases and `system.*` collections (`admin.system.users`,
    /// `<db>.system.views`). Off by default: they are refused naming the namespace.
    pub system_namespaces: bool,
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.shown())
            .field("database", &self.database)
            .field("filter", &self.filter)
            .field("full_document", &self.full_document)
            .field("pre_images", &self.pre_images)
            .field("split_large_events", &self.split_large_events)
            .field("max_await", &self.max_await)
            .field("snapshot_chunk", &self.snapshot_chunk)
            .field("reconnect_for", &self.reconnect_for)
            .field("system_namespaces", &self.system_namespaces)
            .finish()
    }
}

/// What one change stream watches: the narrowest scope that covers the filter, so that the
/// server does the least work and the user needs the fewest privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    Deployment,
    Database(String),
    Collection(String, String),
}

impl MongoConfig {
    /// Parses `mongodb://[user:password@]host[:port][,host...]/[db][?options]` (also
    /// `mongodb+srv://`). The driver checks the options when connecting. A user name or
    /// password must percent-encode `:/?#[]@`; one that holds them raw is refused (without
    /// quoting it), since the driver would read part of it as hosts or options.
    pub fn from_url(uri: &str) -> Result<Self, ConfigError> {
        let parts = uri::parse(uri).map_err(|(reason, parts)| ConfigError {
            shown: parts.shown(uri),
            reason,
        })?;
        Ok(Self {
            uri: uri.to_owned(),
            database: parts.database.clone(),
            parts,
            filter: NamespaceFilter::all(),
            full_document: FullDocument::default(),
            pre_images: PreImages::Off,
            split_large_events: false,
            max_await: Duration::from_millis(500),
            snapshot_chunk: 1000,
            reconnect_for: Duration::from_secs(60),
            system_namespaces: false,
        })
    }

    /// The URI with its password and secret options replaced by `***` (`redact_url`).
    pub fn shown(&self) -> String {
        self.parts.shown(&self.uri)
    }

    /// The URI as given (with its password: never print it; see [`MongoConfig::shown`]).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub(crate) fn uri_parts(&self) -> &UriParts {
        &self.parts
    }

    /// Removes the password and secret option values from a message (the driver may quote
    /// them, or the whole URI).
    pub fn scrub(&self, message: &str) -> String {
        self.parts.scrub(&message.replace(&self.uri, &self.shown()))
    }

    /// Whether events of `db.coll` are wanted (`coll` empty for database-wide events).
    pub fn wants(&self, db: &str, coll: &str) -> bool {
        if coll.is_empty() {
            return self.db_wanted(db);
        }
        if !self.filter.matches_parts(db, coll) {
            return false;
        }
        if !self.filter.includes().is_empty() {
            return true;
        }
        self.database.as_deref().is_none_or(|d| d == db)
    }

    fn db_wanted(&self, db: &str) -> bool {
        let includes = self.filter.includes();
        if includes.is_empty() {
            return self.database.as_deref().is_none_or(|d| d == db);
        }
        includes.iter().any(|p| p.matches_db(db))
    }

    pub(crate) fn scope(&self) -> Scope {
        let includes = self.filter.includes();
        if includes.is_empty() {
            return match &self.database {
                Some(db) => Scope::Database(db.clone()),
                None => Scope::Deployment,
            };
        }
        let literal = |s: &str| !s.contains(['*', '?']);
        let parts: Vec<(&str, &str)> = includes
            .iter()
            .map(|p| (p.db_part(), p.table_part()))
            .collect();
        let (db0, coll0) = parts[0];
        if !literal(db0) || parts.iter().any(|(db, _)| *db != db0) {
            return Scope::Deployment;
        }
        if parts.len() == 1 && literal(coll0) {
            Scope::Collection(db0.to_owned(), coll0.to_owned())
        } else {
            Scope::Database(db0.to_owned())
        }
    }
}

/// A `^...$` regular expression for a `*`/`?` glob, for the server-side `$match` on `ns`.
pub(crate) fn glob_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    out.push('^');
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c if "\\^$.|()[]{}+".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_filter(uri: &str, include: &str, exclude: &str) -> MongoConfig {
        let mut c = MongoConfig::from_url(uri).expect("uri");
        c.filter = NamespaceFilter::parse(include, exclude).expect("filter");
        c
    }

    #[test]
    fn the_narrowest_scope_covers_the_filter() {
        let c = |uri, inc| with_filter(uri, inc, "").scope();
        assert_eq!(c("mongodb://h", ""), Scope::Deployment);
        assert_eq!(c("mongodb://h/shop", ""), Scope::Database("shop".into()));
        assert_eq!(
            c("mongodb://h/x", "shop.orders"),
            Scope::Collection("shop".into(), "orders".into())
        );
        assert_eq!(
            c("mongodb://h", "shop.orders,shop.users"),
            Scope::Database("shop".into())
        );
        assert_eq!(c("mongodb://h", "shop.*"), Scope::Database("shop".into()));
        assert_eq!(c("mongodb://h", "shop.a,crm.b"), Scope::Deployment);
        assert_eq!(c("mongodb://h", "s*.a"), Scope::Deployment);
    }

    #[test]
    fn the_filter_decides_on_the_namespace_alone() {
        let c = with_filter("mongodb://h/shop", "", "shop.secret*");
        assert!(c.wants("shop", "orders"));
        assert!(!c.wants("shop", "secrets"));
        assert!(
            !c.wants("crm", "orders"),
            "the URI's database selects shop.*"
        );
        assert!(c.wants("shop", ""), "database-wide events of shop");
        let c = with_filter("mongodb://h", "shop.o?ders", "");
        assert!(c.wants("shop", "orders") && !c.wants("shop", "users"));
        assert!(c.wants("shop", "") && !c.wants("crm", ""));
    }

    #[test]
    fn updates_look_up_the_whole_document_by_default() {
        let c = MongoConfig::from_url("mongodb://h/shop").expect("uri");
        assert_eq!(c.full_document, FullDocument::UpdateLookup);
        assert_eq!(c.pre_images, PreImages::Off);
    }

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_regex("ord*.v?"), "^ord.*\\.v.$");
        assert_eq!(glob_regex("a+b"), "^a\\+b$");
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let e = MongoConfig::from_url("postgres://u:hunter2@h/db").expect_err("scheme");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = MongoConfig::from_url("mongodb://u:hunter2@/db").expect_err("host");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = MongoConfig::from_url("mongodb://u:hunter2@h:27017/shop?tls=true").expect("uri");
        assert_eq!(c.database.as_deref(), Some("shop"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.scrub("cannot reach mongodb://u:hunter2@h:27017/shop?tls=true (hunter2)"),
            "cannot reach mongodb://u:***@h:27017/shop?tls=true (***)"
        );
    }
}
