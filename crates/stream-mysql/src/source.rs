//! [`MySqlSource`]: checks the server, resolves where to start, and spawns the binlog reader.

use stream_core::{
    CancellationToken, ErrorClass, Opened, Source, SourceError, SourceKind, StartFrom,
};

use crate::MySqlConfig;
use crate::reader::BinlogReader;
use crate::schema::Catalog;
use crate::server::{
    binary_logs, check_database, check_prerequisites, connect, map_err, unique_server_id,
};

/// Reads the binlog of a MySQL or MariaDB server as a [`Source`].
#[derive(Debug, Clone)]
pub struct MySqlSource {
    config: MySqlConfig,
}

impl MySqlSource {
    /// A source with these settings.
    pub fn new(config: MySqlConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &MySqlConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl Source for MySqlSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MySql
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let mut config = self.config.clone();
        let mut conn = connect(&config).await?;
        let info = check_prerequisites(&config, &mut conn).await?;
        check_database(&config, &mut conn).await?;
        let logs = binary_logs(&config, &mut conn).await?;
        let plan = crate::start::plan(&mut config, &mut conn, &logs, &from).await?;
        let mut catalog = Catalog::load(&mut conn, |db, t| config.wants(db, t))
            .await
            .map_err(|e| map_err(&config, e))?;
        warn_of_patterns_matching_nothing(&config, &catalog);
        if let Some(state) = &config.schema_state {
            catalog
                .restore(state)
                .map_err(|reason| SourceError::Other {
                    reason,
                    class: ErrorClass::Definite,
                })?;
        }
        drop(conn);
        let server_id = config.server_id.unwrap_or_else(unique_server_id);
        let reconnect = crate::server::reconnect_policy(&config);
        let batches = crate::supervise::spawn_supervised("binlog reader", 2, move |tx| {
            let reader = BinlogReader {
                config,
                info,
                server_id,
                catalog,
                resume: plan.resume,
                tx,
                shutdown,
                view_filter: plan.view_filter,
                state_pending: true,
                state_after_ddl: false,
                reconnect,
            };
            reader.run(plan.snapshot)
        });
        Ok(Opened {
            start: plan.shown,
            batches,
        })
    }
}

/// An include pattern no table matches is most often a typo or a missing grant (a table the
/// user may not SELECT is invisible to it): say so where the user can see it. Not an error:
/// the table may be created later.
fn warn_of_patterns_matching_nothing(config: &MySqlConfig, catalog: &Catalog) {
    for pattern in config.filter.includes() {
        if !catalog
            .tables
            .keys()
            .any(|(db, table)| pattern.matches_parts(db, table))
        {
            tracing::warn!(
                pattern = pattern.as_str(),
                server = %config.endpoint(),
                "the include pattern matches no table this user can see yet: check its spelling and the user's SELECT grant (tables it may not read are invisible to it); a table created later is picked up"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_one_line_with_where_and_what_to_do() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let url = format!("mysql://app:s3cret-pw@127.0.0.1:{port}/shop");
        let mut source = MySqlSource::new(MySqlConfig::from_url(&url).expect("url"));
        let err = source
            .open(StartFrom::Latest, CancellationToken::new())
            .await
            .expect_err("nothing listens there");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect to 127.0.0.1:{port}: connection refused; check that the server \
                 is running and that the URL's host and port are right"
            )
        );
        assert_eq!(err.class(), ErrorClass::Transient);
    }
}
