//! Connection and stream settings, parsed from a `mysql://` URL.

use stream_core::{NamespaceFilter, UrlParts, redact_url};

/// Why a configuration was rejected. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MySQL URL ({shown}): {reason}")]
pub struct ConfigError {
    /// The URL with its password replaced by `***`.
    pub shown: String,
    /// What is wrong.
    pub reason: String,
}

/// Whether and how the connection uses TLS (`?ssl-mode=` in the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP (the default).
    #[default]
    Disabled,
    /// TLS, but the server's certificate is not checked.
    Required,
    /// TLS with the certificate checked against the CA (`ssl-ca=`), not the host name.
    VerifyCa,
    /// TLS with certificate and host name checked.
    VerifyIdentity,
}

/// The connection pool of the store (`MySqlStore`, the Streamer's reads and writes): how many
/// connections it holds and when idle ones close, so a burst's connections do not stay open.
/// URL options `pool_min`, `pool_max`, `inactive_connection_ttl` and `ttl_check_interval` (the
/// names `mysql_async` gives them; the durations in whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept open however long they idle (`pool_min`, 1).
    pub min: usize,
    /// Connections open at most; further callers wait for one (`pool_max`, 10).
    pub max: usize,
    /// How long a connection above `min` may idle before it closes (`inactive_connection_ttl`,
    /// 60 s); zero closes every connection above `min` as soon as it is returned.
    pub inactive_ttl: std::time::Duration,
    /// How often idle connections are checked against `inactive_ttl` (`ttl_check_interval`,
    /// 10 s, at least 1 s), so one closes between `inactive_ttl` and the sum of both.
    pub check_interval: std::time::Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            min: 1,
            max: 10,
            inactive_ttl: std::time::Duration::from_secs(60),
            check_interval: std::time::Duration::from_secs(10),
        }
    }
}

impl PoolLimits {
    /// The `mysql_async` pool options (a `min` above `max` is taken as `max`).
    pub(crate) fn pool_opts(&self) -> mysql_async::PoolOpts {
        let max = self.max.max(1);
        let constraints =
            mysql_async::PoolConstraints::new(self.min.min(max), max).unwrap_or_default();
        mysql_async::PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(self.inactive_ttl)
            .with_ttl_check_interval(self.check_interval)
    }
}

/// Where and how to read the binlog.
#[derive(Clone)]
pub struct MySqlConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (3306 by default).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password (never printed: `Debug` and errors redact it).
    pub password: String,
    /// Default database from the URL path, if any.
    pub database: Option<String>,
    /// Which tables to stream; the URL's database alone selects `db.*` unless a filter is set.
    pub filter: NamespaceFilter,
    /// Replica server id to register as; `None` picks one unique to this process and moment.
    pub server_id: Option<u32>,
    /// How long to keep reconnecting after the connection drops before giving up.
    pub reconnect_for: std::time::Duration,
    /// How long a new connection may take to be ready (TCP, TLS, login) before the attempt
    /// counts as failed: 10 s unless `connect_timeout=<seconds>` is in the URL. Without it, a
    /// server that accepts but never answers, or a network that drops packets, would hold an
    /// attempt for minutes.
    pub connect_timeout: std::time::Duration,
    /// Emit MariaDB GTID positions (`mariadb-gtid:...`), which survive a failover to another
    /// server of the replication topology, instead of binlog file positions.
    pub gtid_positions: bool,
    /// TLS: `ssl-mode=disabled|required|verify-ca|verify-identity` in the URL.
    pub ssl_mode: SslMode,
    /// A CA certificate (PEM file) for `verify-ca`/`verify-identity` (`ssl-ca=` in the URL);
    /// without one, the public web roots are trusted.
    pub ssl_ca: Option<std::path::PathBuf>,
    /// Table definitions saved with the checkpoint (`Checkpoint::state`) to resume with,
    /// instead of the server's current ones; needed to decode old rows correctly after DDL
    /// when `binlog_row_metadata` is not FULL.
    pub schema_state: Option<serde_json::Value>,
    /// The store's connection pool (`pool_min`, `pool_max`, `inactive_connection_ttl`,
    /// `ttl_check_interval` in the URL).
    pub pool: PoolLimits,
}

impl std::fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("database", &self.database)
            .field("filter", &self.filter)
            .field("server_id", &self.server_id)
            .field("reconnect_for", &self.reconnect_for)
            .field("connect_timeout", &self.connect_timeout)
            .field("gtid_positions", &self.gtid_positions)
            .field("schema_state", &self.schema_state.is_some())
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .field("pool", &self.pool)
            .finish()
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MySqlConfig {
    /// Parses `mysql://user:password@host:port/db?options` (also `mariadb://`). The user and
    /// password may be percent-encoded; the password may also hold `?`, `#`, `/` and `@` as
    /// they are, since the credentials end at the URL's last `@`.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let shown = redact_url(url);
        let err = |reason: &str| ConfigError {
            shown: shown.clone(),
            reason: reason.to_owned(),
        };
        // Credentials first: a password may hold `?`, `/` or `@` (see `UrlParts`).
        let parts = UrlParts::parse(url)
            .ok_or_else(|| err("expected mysql://user:password@host:port/db"))?;
        if !matches!(
            parts.scheme.to_ascii_lowercase().as_str(),
            "mysql" | "mariadb"
        ) {
            return Err(err("the scheme must be mysql:// or mariadb://"));
        }
        let mut ssl_mode = SslMode::Disabled;
        let mut ssl_ca = None;
        let mut pool = PoolLimits::default();
        let mut connect_timeout = std::time::Duration::from_secs(10);
        for (k, v) in parts.options() {
            let v =
                percent_decode(v).ok_or_else(|| err(&format!("bad percent-encoding in `{k}`")))?;
            match k.to_ascii_lowercase().replace('_', "-").as_str() {
                "ssl-mode" => {
                    ssl_mode = match v.to_ascii_lowercase().replace('_', "-").as_str() {
                        "disabled" => SslMode::Disabled,
                        "required" => SslMode::Required,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-identity" => SslMode::VerifyIdentity,
                        other => {
                            return Err(err(&format!(
                                "ssl-mode `{other}` is not one of disabled, required, verify-ca, verify-identity"
                            )));
                        }
                    }
                }
                "ssl-ca" => ssl_ca = Some(std::path::PathBuf::from(v)),
                key @ ("pool-min"
                | "pool-max"
                | "inactive-connection-ttl"
                | "ttl-check-interval"
                | "connect-timeout") => {
                    let n = v.parse::<u64>().map_err(|e| {
                        let what = match e.kind() {
                            std::num::IntErrorKind::PosOverflow => "a smaller whole number",
                            _ => "a whole number",
                        };
                        err(&format!("`{k}` must be {what}, not `{v}`"))
                    })?;
                    let seconds = std::time::Duration::from_secs(n);
                    match key {
                        "pool-min" => pool.min = usize::try_from(n).unwrap_or(usize::MAX),
                        "pool-max" => pool.max = usize::try_from(n).unwrap_or(usize::MAX),
                        "inactive-connection-ttl" => pool.inactive_ttl = seconds,
                        "connect-timeout" => connect_timeout = seconds,
                        _ => pool.check_interval = seconds,
                    }
                }
                _ => {
                    return Err(err(&format!(
                        "unknown URL parameter `{k}` (known: ssl-mode, ssl-ca, connect_timeout, \
                         pool_min, pool_max, inactive_connection_ttl, ttl_check_interval)"
                    )));
                }
            }
        }
        if pool.max == 0 {
            return Err(err("pool_max must be at least 1"));
        }
        if pool.min > pool.max {
            return Err(err(&format!(
                "pool_min ({}) must be at most pool_max ({})",
                pool.min, pool.max
            )));
        }
        if pool.check_interval.is_zero() {
            return Err(err("ttl_check_interval must be at least 1 (second)"));
        }
        if connect_timeout.is_zero() {
            return Err(err("connect_timeout must be at least 1 (second)"));
        }
        let user = parts
            .user
            .ok_or_else(|| err("missing user: expected mysql://user:password@host:port/db"))?;
        let password = parts.password.unwrap_or_default();
        let user = percent_decode(user).ok_or_else(|| err("bad percent-encoding in the user"))?;
        let password =
            percent_decode(password).ok_or_else(|| err("bad percent-encoding in the password"))?;
        if user.is_empty() {
            return Err(err("empty user name"));
        }
        let (hostport, path) = (parts.hosts, parts.path.unwrap_or_default());
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| err(&format!("port `{p}` is not a number from 1 to 65535")))?;
                (
                    h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    port,
                )
            }
            _ => (hostport.to_owned(), 3306),
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let database = Some(path.trim_end_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| percent_decode(p).ok_or_else(|| err("bad percent-encoding in the database")))
            .transpose()?;
        Ok(Self {
            host,
            port,
            user,
            password,
            database,
            filter: NamespaceFilter::all(),
            server_id: None,
            reconnect_for: std::time::Duration::from_secs(60),
            connect_timeout,
            gtid_positions: false,
            schema_state: None,
            ssl_mode,
            ssl_ca,
            pool,
        })
    }

    /// Connection options for `mysql_async`, TLS included.
    pub(crate) fn opts(&self) -> mysql_async::OptsBuilder {
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false);
        let ssl = match self.ssl_mode {
            SslMode::Disabled => None,
            mode => {
                let mut ssl = mysql_async::SslOpts::default()
                    .with_danger_accept_invalid_certs(mode == SslMode::Required)
                    .with_danger_skip_domain_validation(mode != SslMode::VerifyIdentity);
                if let Some(ca) = &self.ssl_ca {
                    ssl = ssl.with_root_certs(vec![ca.clone().into()]);
                }
                Some(ssl)
            }
        };
        builder.ssl_opts(ssl)
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whether `db.table` is streamed: the filter if it has includes, else the URL's database
    /// (or everything when the URL has none).
    pub fn wants(&self, db: &str, table: &str) -> bool {
        if !self.filter.matches_parts(db, table) {
            return false;
        }
        if !self.filter.includes().is_empty() {
            return true;
        }
        self.database.as_deref().is_none_or(|d| d == db)
    }

    /// Whether some tables of `db` may be streamed (for events about a whole database).
    pub(crate) fn wants_database(&self, db: &str) -> bool {
        let includes = self.filter.includes();
        if !includes.is_empty() {
            return includes.iter().any(|p| p.matches_db(db));
        }
        self.database.as_deref().is_none_or(|d| d == db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_percent_encoding() {
        let c = MySqlConfig::from_url("mysql://app:p%40ss@db.example:3307/shop").expect("url");
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str()),
            ("db.example", 3307, "app")
        );
        assert_eq!(c.password, "p@ss");
        assert_eq!(c.database.as_deref(), Some("shop"));
        let c = MySqlConfig::from_url("mariadb://root@localhost").expect("url");
        assert_eq!((c.port, c.password.as_str(), c.database), (3306, "", None));
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        for bad in [
            "mysql://u:hunter2@h:99999/db",
            "postgres://u:hunter2@h/db",
            "mysql://:hunter2@h/db",
            "mysql://u:hunter2@:1/db",
        ] {
            let e = MySqlConfig::from_url(bad).expect_err(bad).to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("***") || !bad.contains("@"), "{e}");
        }
        let c = MySqlConfig::from_url("mysql://u:hunter2@h/db").expect("url");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn passwords_with_url_characters_never_leak_into_errors_or_debug() {
        for password in [
            "abc?Hunter2",
            "Hunter2#frag",
            "a/b@Hunter2",
            "zq&kv=Hunter2",
        ] {
            let url = format!("mysql://u:{password}@db.example:3307/shop");
            let c = MySqlConfig::from_url(&url).expect(&url);
            assert_eq!(
                (c.password.as_str(), c.host.as_str(), c.port),
                (password, "db.example", 3307)
            );
            assert_eq!(c.database.as_deref(), Some("shop"));
            let debug = format!("{c:?}");
            for bad in [
                format!("mysql://u:{password}@db.example:99999/shop"),
                format!("mysql://u:{password}@db.example/shop?frob=1"),
                format!("mysql://u:{password}@db.example/shop?ssl-mode=maybe"),
                format!("mysql://:{password}@db.example/shop"),
            ] {
                let e = MySqlConfig::from_url(&bad).expect_err(&bad);
                for shown in [e.to_string(), format!("{e:?}"), debug.clone()] {
                    let lower = shown.to_ascii_lowercase();
                    assert!(!lower.contains("hunter2"), "{shown}");
                    for part in password.split(['?', '#', '/', '@', '&', '=']) {
                        assert!(part.len() < 3 || !shown.contains(part), "{part} in {shown}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_password_with_a_question_mark_is_the_password_not_options() {
        let c = MySqlConfig::from_url("mysql://u:abc?Hunter2@h/db?ssl-mode=required").expect("url");
        assert_eq!((c.password.as_str(), c.host.as_str()), ("abc?Hunter2", "h"));
        assert_eq!(
            (c.database.as_deref(), c.ssl_mode),
            (Some("db"), SslMode::Required)
        );
        let e = MySqlConfig::from_url("mysql://u:abc?Hunter2@h:x/db").expect_err("port");
        assert!(!e.to_string().to_lowercase().contains("hunter2"), "{e}");
    }

    #[test]
    fn tls_settings_come_from_url_parameters() {
        let c = MySqlConfig::from_url("mysql://u@h/db?ssl-mode=verify_ca&ssl-ca=%2Fetc%2Fca.pem")
            .expect("url");
        assert_eq!(c.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            c.ssl_ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(c.database.as_deref(), Some("db"));
        let err = MySqlConfig::from_url("mysql://u:pw@h/db?ssl-mode=maybe")
            .expect_err("bad mode")
            .to_string();
        assert!(
            err.contains("ssl-mode `maybe`") && !err.contains("pw@"),
            "{err}"
        );
        let err = MySqlConfig::from_url("mysql://u@h/db?frob=1")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown URL parameter `frob`"), "{err}");
    }

    #[test]
    fn the_url_database_selects_its_tables_unless_includes_are_given() {
        let mut c = MySqlConfig::from_url("mysql://u@h/shop").expect("url");
        assert!(c.wants("shop", "orders"));
        assert!(!c.wants("crm", "leads"));
        c.filter = NamespaceFilter::parse("crm.*", "crm.secret").expect("filter");
        assert!(c.wants("crm", "leads"));
        assert!(!c.wants("crm", "secret"));
        assert!(!c.wants("shop", "orders"));
        assert!(c.wants_database("crm") && !c.wants_database("shop"));
        let c = MySqlConfig::from_url("mysql://u@h/shop").expect("url");
        assert!(c.wants_database("shop") && !c.wants_database("crm"));
    }

    #[test]
    fn pool_limits_come_from_the_url_options_mysql_async_names() {
        let c = MySqlConfig::from_url("mysql://u@h/db").expect("url");
        assert_eq!(c.pool, PoolLimits::default());
        let opts = c.pool.pool_opts();
        assert_eq!(
            (opts.constraints().min(), opts.constraints().max()),
            (1, 10)
        );
        assert!(!opts.inactive_connection_ttl().is_zero());
        let c = MySqlConfig::from_url(
            "mysql://u@h/db?pool_min=2&pool-max=4&inactive_connection_ttl=5&ttl_check_interval=1",
        )
        .expect("url");
        let opts = c.pool.pool_opts();
        assert_eq!((opts.constraints().min(), opts.constraints().max()), (2, 4));
        assert_eq!(
            (opts.inactive_connection_ttl(), opts.ttl_check_interval()),
            (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(1)
            )
        );
        for (bad, says) in [
            (
                "pool_min=5&pool_max=4",
                "pool_min (5) must be at most pool_max (4)",
            ),
            ("pool_max=0", "pool_max must be at least 1"),
            (
                "pool_max=99999999999999999999",
                "`pool_max` must be a smaller whole number",
            ),
            ("pool_maxx=4", "unknown URL parameter `pool_maxx`"),
            (
                "pool_max=lots",
                "`pool_max` must be a whole number, not `lots`",
            ),
            ("inactive_connection_ttl=1.5", "whole number"),
            (
                "ttl_check_interval=0",
                "ttl_check_interval must be at least 1",
            ),
        ] {
            let url = format!("mysql://u:hunter2@h/db?{bad}");
            let e = MySqlConfig::from_url(&url).expect_err(&url).to_string();
            assert!(e.contains(says) && !e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn connect_timeout_is_ten_seconds_unless_the_url_says_otherwise() {
        let seconds = |url: &str| {
            MySqlConfig::from_url(url)
                .map(|c| c.connect_timeout.as_secs())
                .map_err(|e| e.to_string())
        };
        assert_eq!(seconds("mysql://u@h/db"), Ok(10));
        assert_eq!(seconds("mysql://u@h/db?connect_timeout=3"), Ok(3));
        assert_eq!(seconds("mysql://u@h/db?connect-timeout=30"), Ok(30));
        let zero = seconds("mysql://u@h/db?connect_timeout=0").expect_err("zero");
        assert!(
            zero.contains("connect_timeout must be at least 1"),
            "{zero}"
        );
        let unknown = seconds("mysql://u@h/db?timeout=3").expect_err("unknown");
        assert!(unknown.contains("connect_timeout"), "{unknown}");
    }
}
