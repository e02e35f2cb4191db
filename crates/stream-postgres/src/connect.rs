//! Connecting to PostgreSQL, with errors that never show the password.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::error::{PostgresError, describe, is_login_refusal};

/// The password of a `postgres://user:password@host/db` URL, if any.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let creds = rest.rsplit_once('@')?.0;
    creds
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// `message` with the URL and its password replaced by their redacted forms.
pub(crate) fn scrub(url: &str, message: &str) -> String {
    let mut out = message.replace(url, &stream_core::redact_url(url));
    if let Some(password) = password_of(url) {
        out = out.replace(password, "***");
    }
    out
}

/// Opens a connection (plain TCP or a Unix socket; no TLS yet) and drives it on a task that
/// ends when the returned client is dropped. `application_name` shows in `pg_stat_activity`.
pub(crate) async fn connect(url: &str, application_name: &str) -> Result<Client, PostgresError> {
    let fail = |reason: String| PostgresError::Connect {
        target: stream_core::redact_url(url),
        reason: scrub(url, &reason),
    };
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| fail(format!("{e}")))?;
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    notice_a_silent_peer(&mut config);
    // tokio-postgres bounds only each TCP connect by `connect_timeout`; a server that accepts
    // and never answers would hold the login for ever. One `connect_timeout` per host it may
    // try in turn (failover keeps working), and one for the login.
    let per_step = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(10));
    let steps = u32::try_from(config.get_hosts().len().max(1) + 1).unwrap_or(u32::MAX);
    let limit = per_step.saturating_mul(steps);
    let connected = tokio::time::timeout(limit, config.connect(NoTls))
        .await
        .map_err(|_| PostgresError::Connect {
            target: stream_core::redact_url(url),
            reason: format!(
                "no answer within {} s (connect_timeout, {} s, for the connection to each \
                 host and once more for the login); check that the server is running and \
                 that the network lets the connection through",
                limit.as_secs(),
                per_step.as_secs()
            ),
        })?;
    let (client, connection) = connected.map_err(|e| {
        let reason = scrub(url, &describe(&e));
        match e.as_db_error() {
            Some(db) if is_login_refusal(db.code().code()) => PostgresError::Refused {
                target: stream_core::redact_url(url),
                reason,
            },
            _ => PostgresError::Connect {
                target: stream_core::redact_url(url),
                reason,
            },
        }
    })?;
    let shown = stream_core::redact_url(url);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target_db = %shown, error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// TCP keepalives and an unacknowledged-data limit, unless the URL sets them: a connection
/// whose peer vanished (a network partition, a host powered off) fails within about 30 s when
/// idle and 2 minutes with a write in flight, instead of the kernel's 2 hours of idle or 15
/// minutes of retransmissions. Not less: a server that stops reading a COPY for a while (a
/// lock wait) keeps its window closed, which the limit counts too.
fn notice_a_silent_peer(config: &mut tokio_postgres::Config) {
    const DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
    if config.get_keepalives_idle() == DEFAULT_IDLE {
        config.keepalives_idle(Duration::from_secs(15));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(120));
    }
}

/// Logs in to `url` once and hangs up: a wrong password, role or database shows here as
/// [`PostgresError::Refused`] (definite), a server that is down as
/// [`PostgresError::Connect`] (transient), before anything starts.
pub async fn check_login(url: &str) -> Result<(), PostgresError> {
    connect(url, "ustream-login-check").await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_notice_a_vanished_peer_in_minutes_at_most_unless_the_url_says_otherwise() {
        let configured = |url: &str| {
            let mut config: tokio_postgres::Config = url.parse().expect("url");
            notice_a_silent_peer(&mut config);
            (
                config.get_keepalives_idle().as_secs(),
                config.get_keepalives_interval().map(|d| d.as_secs()),
                config.get_keepalives_retries(),
                config.get_tcp_user_timeout().map(Duration::as_secs),
            )
        };
        assert_eq!(
            configured("postgres://u@h/d"),
            (15, Some(5), Some(3), Some(120))
        );
        assert_eq!(
            configured(
                "postgres://u@h/d?keepalives_idle=60&keepalives_interval=10&keepalives_retries=9&tcp_user_timeout=120"
            ),
            (60, Some(10), Some(9), Some(120))
        );
    }

    #[test]
    fn messages_lose_the_password() {
        let url = "postgres://w:hunter2@db:5432/r";
        assert_eq!(
            scrub(url, &format!("bad {url}; hunter2")),
            "bad postgres://w:***@db:5432/r; ***"
        );
        assert_eq!(password_of("postgres://w@db/r"), None);
    }
}
