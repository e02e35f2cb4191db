//! Logging in to every sink's PostgreSQL before anything starts, so that a wrong password,
//! role or database is an input error naming the setting (exit 2), not a retry loop or a
//! runtime failure of the checkpoint store.

use stream_core::ErrorClass;

use super::RunError;
use super::plan::{Plan, SinkKind};

/// Fails with `sinks.<name>.url` when a sink's server refuses its login for good; a server
/// that cannot be reached now is left to the pipeline's retries.
pub(crate) async fn check_sink_logins(plan: &Plan) -> Result<(), RunError> {
    for sink in &plan.sinks {
        let SinkKind::Postgres { url } = &sink.kind;
        match stream_postgres::check_login(url).await {
            Err(e) if e.class() == ErrorClass::Definite => {
                return Err(RunError::Input {
                    key: format!("sinks.{}.url", sink.name),
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "PostgreSQL not reachable yet; the pipeline retries")
            }
            Ok(()) => {}
        }
    }
    Ok(())
}
