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
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
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
    fn messages_lose_the_password() {
        let url = "postgres://w:hunter2@db:5432/r";
        assert_eq!(
            scrub(url, &format!("bad {url}; hunter2")),
            "bad postgres://w:***@db:5432/r; ***"
        );
        assert_eq!(password_of("postgres://w@db/r"), None);
    }
}
