//! Talking to the server outside the binlog stream: connecting, classifying driver errors by
//! the server's error code, prerequisites, the binary logs, the URL's database, GTID lookups.

use mysql_async::Conn;
use mysql_async::prelude::*;
use stream_core::{ErrorClass, MariaDbGtidList, Namespace, SourceError};

use crate::MySqlConfig;

/// Server error codes the source acts on (`include/mysqld_error.h`).
pub(crate) mod code {
    /// ER_DBACCESS_DENIED_ERROR: no access to the database.
    pub(crate) const DBACCESS_DENIED: u16 = 1044;
    /// ER_ACCESS_DENIED_ERROR: wrong user or password.
    pub(crate) const ACCESS_DENIED: u16 = 1045;
    /// ER_BAD_DB_ERROR: unknown database.
    pub(crate) const BAD_DB: u16 = 1049;
    /// ER_HOST_NOT_PRIVILEGED: this host may not connect.
    pub(crate) const HOST_NOT_PRIVILEGED: u16 = 1130;
    /// ER_SPECIFIC_ACCESS_DENIED_ERROR: a privilege (here: replication) is missing.
    pub(crate) const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    /// ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested binlog file, position or GTID state
    /// is not on the server (purged, or never written there).
    pub(crate) const BINLOG_UNAVAILABLE: u16 = 1236;
}

/// What the server says about itself.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub(crate) checksum: bool,
}

/// Maps a driver error to a source error; server messages never contain the password.
pub(crate) fn map_err(config: &MySqlConfig, e: mysql_async::Error) -> SourceError {
    let mysql_async::Error::Server(se) = e else {
        return SourceError::ConnectionLost {
            reason: format!(
                "{} ({}); check the server and the network",
                describe(&e),
                config.endpoint()
            ),
        };
    };
    match se.code {
        code::ACCESS_DENIED | code::DBACCESS_DENIED | code::BAD_DB | code::HOST_NOT_PRIVILEGED => {
            SourceError::Connect {
                target: config.endpoint(),
                reason: format!(
                    "{} (check the user, password and database in the URL and the user's grants)",
                    se.message
                ),
                class: ErrorClass::Definite,
            }
        }
        code::SPECIFIC_ACCESS_DENIED => SourceError::Prerequisite {
            setting: "privileges".into(),
            expected: "REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR)".into(),
            actual: format!("missing ({})", se.message),
        },
        code::BINLOG_UNAVAILABLE => SourceError::Other {
            reason: format!(
                "{} cannot send the binlog: {}",
                config.endpoint(),
                se.message
            ),
            class: ErrorClass::Definite,
        },
        other => SourceError::Other {
            reason: format!(
                "{} answered error {other}: {}",
                config.endpoint(),
                se.message
            ),
            class: ErrorClass::Transient,
        },
    }
}

/// One phrase for a driver or network failure, without the driver's repeated prefixes
/// (`Input/output error: Input/output error: ...`).
pub(crate) fn describe(e: &mysql_async::Error) -> String {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        Error::Io(IoError::Io(io)) => describe_io(io),
        Error::Io(IoError::Tls(tls)) => format!("TLS failed: {tls}"),
        Error::Driver(DriverError::ConnectionClosed) => "the server closed the connection".into(),
        Error::Driver(d) => d.to_string(),
        Error::Server(se) => format!("error {}: {}", se.code, se.message),
        Error::Other(other) => other.to_string(),
        Error::Url(url) => url.to_string(),
    }
}

fn describe_io(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        ErrorKind::TimedOut => "timed out".into(),
        _ => {
            let text = io.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
    }
}

/// What to do about a failed connection attempt.
fn connect_hint(e: &mysql_async::Error) -> &'static str {
    use mysql_async::{Error, IoError};
    match e {
        Error::Io(IoError::Tls(_)) => "check ssl-mode and ssl-ca in the URL",
        Error::Io(IoError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => {
            "check ssl-mode and ssl-ca in the URL"
        }
        _ => "check that the server is running and that the URL's host and port are right",
    }
}

/// A new connection (no default database; TLS as configured), ready within
/// `connect_timeout` or a transient error.
pub(crate) async fn connect(config: &MySqlConfig) -> Result<Conn, SourceError> {
    let opts = config.opts().max_allowed_packet(Some(1 << 30));
    match tokio::time::timeout(config.connect_timeout, Conn::new(opts)).await {
        Ok(connected) => connected.map_err(|e| connect_error(config, e)),
        Err(_) => Err(connect_timed_out(config)),
    }
}

/// The error for a connection attempt that was not ready within `connect_timeout`.
pub(crate) fn connect_timed_out(config: &MySqlConfig) -> SourceError {
    SourceError::Connect {
        target: config.endpoint(),
        reason: format!(
            "no answer within {} s (connect_timeout); check that the server is running and \
             that the network lets the connection through",
            config.connect_timeout.as_secs()
        ),
        class: ErrorClass::Transient,
    }
}

/// The error for a failed connection attempt.
pub(crate) fn connect_error(config: &MySqlConfig, e: mysql_async::Error) -> SourceError {
    match e {
        mysql_async::Error::Server(_) => map_err(config, e),
        other => SourceError::Connect {
            target: config.endpoint(),
            reason: format!("{}; {}", describe(&other), connect_hint(&other)),
            class: ErrorClass::Transient,
        },
    }
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
            reason: format!("{} returned no settings", config.endpoint()),
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

/// Fails when the URL names a database the server does not have (a typo would otherwise
/// stream nothing, silently), naming it and the databases there are.
pub(crate) async fn check_database(
    config: &MySqlConfig,
    conn: &mut Conn,
) -> Result<(), SourceError> {
    let Some(wanted) = config.database.as_deref() else {
        return Ok(());
    };
    let names: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .map_err(|e| map_err(config, e))?;
    let case_insensitive: Option<u32> = conn
        .query_first("SELECT @@lower_case_table_names")
        .await
        .map_err(|e| map_err(config, e))?;
    let same = |name: &str| match case_insensitive {
        Some(0) | None => name == wanted,
        Some(_) => name.eq_ignore_ascii_case(wanted),
    };
    if names.iter().any(|n| same(n)) {
        return Ok(());
    }
    Err(SourceError::Other {
        reason: unknown_database(wanted, &config.endpoint(), names),
        class: ErrorClass::Definite,
    })
}

/// Databases listed in an unknown-database error; the closest names come first.
const LISTED_DATABASES: usize = 20;

fn unknown_database(wanted: &str, endpoint: &str, names: Vec<String>) -> String {
    const SYSTEM: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| !SYSTEM.contains(&n.as_str()))
        .collect();
    if names.is_empty() {
        return format!(
            "database `{wanted}` in the URL does not exist on {endpoint}, which has no databases \
             besides the system ones (create it, or fix the URL's path)"
        );
    }
    names.sort_by_cached_key(|n| (edit_distance(wanted, n), n.clone()));
    let more = names.len().saturating_sub(LISTED_DATABASES);
    names.truncate(LISTED_DATABASES);
    let mut listed = names.join(", ");
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    format!(
        "database `{wanted}` in the URL does not exist on {endpoint}; it has {listed} (fix the URL's path)"
    )
}

/// Levenshtein distance over characters, to list likely-meant names first.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// MariaDB: the GTID state after everything before `file:offset` (`BINLOG_GTID_POS`).
pub(crate) async fn gtid_state_at(
    config: &MySqlConfig,
    conn: &mut Conn,
    file: &str,
    offset: u64,
) -> Result<MariaDbGtidList, SourceError> {
    let state: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, offset))
        .await
        .map_err(|e| map_err(config, e))?;
    state
        .flatten()
        .unwrap_or_default()
        .parse()
        .map_err(|e: stream_core::PositionParseError| SourceError::Other {
            reason: format!(
                "the GTID state {} reports for {file}:{offset} cannot be read: {e}",
                config.endpoint()
            ),
            class: ErrorClass::Definite,
        })
}

/// Reconnects after 100 ms, doubling up to 2 s, for as long as `reconnect_for` allows.
pub(crate) fn reconnect_policy(config: &MySqlConfig) -> stream_core::Reconnect {
    stream_core::Reconnect::new(config.reconnect_for).delays(stream_core::Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(2),
    ))
}

/// A replica server id unlikely to collide with another reader's: the top bit set (away from
/// real replicas' small ids), the rest from the process id and the moment.
pub(crate) fn unique_server_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (std::process::id().wrapping_mul(0x9e37_79b9)) ^ nanos.rotate_left(13);
    0x4000_0000 | (mixed & 0x3fff_ffff)
}

/// The tables of the server this config would stream (user schemas only, filtered by the
/// config's include/exclude), in name order: what a pattern can match today.
pub async fn list_tables(config: &MySqlConfig) -> Result<Vec<Namespace>, SourceError> {
    let mut conn = connect(config).await?;
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| map_err(config, e))?;
    let _ = conn.disconnect().await;
    Ok(tables
        .into_iter()
        .filter(|(db, table)| config.wants(db, table))
        .map(|(db, table)| Namespace::new(db, table))
        .collect())
}

/// The base tables this config would stream with the server's row estimate of each
/// (`information_schema.TABLES.TABLE_ROWS`: InnoDB's estimate, not a count), in name order.
pub async fn estimate_rows(config: &MySqlConfig) -> Result<Vec<(Namespace, u64)>, SourceError> {
    let mut conn = connect(config).await?;
    let tables: Vec<(String, String, Option<u64>)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
             ('mysql', 'information_schema', 'performance_schema', 'sys') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| map_err(config, e))?;
    let _ = conn.disconnect().await;
    Ok(tables
        .into_iter()
        .filter(|(db, table, _)| config.wants(db, table))
        .map(|(db, table, rows)| (Namespace::new(db, table), rows.unwrap_or(0)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_one_phrase_without_the_drivers_prefixes() {
        let refused = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(describe(&refused), "connection refused");
        let other = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
            "failed to lookup address information (os error -2)",
        )));
        assert_eq!(describe(&other), "failed to lookup address information");
        let config = MySqlConfig::from_url("mysql://u:hunter2@db.example:3307/shop").expect("url");
        let lost = map_err(
            &config,
            mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed),
        )
        .to_string();
        assert_eq!(
            lost,
            "connection lost: the server closed the connection (db.example:3307); check the server \
             and the network"
        );
    }

    #[test]
    fn an_unknown_database_lists_the_closest_names_first() {
        let names = [
            "shop",
            "crm",
            "mysql",
            "shops_archive",
            "information_schema",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            unknown_database("shpo", "h:3306", names),
            "database `shpo` in the URL does not exist on h:3306; it has shop, crm, \
             shops_archive (fix the URL's path)"
        );
        let many: Vec<String> = (0..30).map(|i| format!("db{i:02}")).collect();
        let text = unknown_database("db07x", "h:3306", many);
        assert!(text.contains("it has db07, "), "{text}");
        assert!(
            text.ends_with(" and 10 more (fix the URL's path)"),
            "{text}"
        );
        assert!(unknown_database("x", "h:1", vec!["sys".into()]).contains("no databases"));
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("shpo", "shop"), 2);
        assert_eq!(edit_distance("shop", "shop"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
