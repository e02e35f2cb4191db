//! Sources from their checked config: change capture or polling, MySQL/MariaDB or MongoDB.

use stream_core::{
    CancellationToken, Opened, PollSchedule, Source, SourceError, SourceKind, StartFrom,
};
use stream_mongo::{MongoPollingSource, MongoSource};
use stream_mysql::{MySqlPollingSource, MySqlSource};

use super::plan::{ReadMode, Server, SourcePlan};

/// A fresh source for `plan` (the streamer builds one per connection), with the state saved
/// in the checkpoint it resumes from (a binlog reader's table definitions at that position).
pub(crate) fn build_source(plan: &SourcePlan, state: Option<serde_json::Value>) -> Box<dyn Source> {
    let inner: Box<dyn Source> = match (&plan.server, &plan.mode) {
        (Server::MySql(config), ReadMode::Stream) => {
            let mut config = config.clone();
            config.schema_state = state;
            Box::new(MySqlSource::new(config))
        }
        (
            Server::MySql(config),
            ReadMode::Poll {
                column,
                schedule,
                safety_lag,
            },
        ) => {
            let source = MySqlPollingSource::new(config.clone(), column).safety_lag(*safety_lag);
            Box::new(match schedule {
                PollSchedule::Every(interval) => source.interval(*interval),
                PollSchedule::Cron(cron) => source.schedule(cron.clone()),
            })
        }
        (Server::Mongo(config), ReadMode::Stream) => Box::new(MongoSource::new(config.clone())),
        (
            Server::Mongo(config),
            ReadMode::Poll {
                column,
                schedule,
                safety_lag,
            },
        ) => {
            let source = MongoPollingSource::new(config.clone(), column).safety_lag(*safety_lag);
            Box::new(match schedule {
                PollSchedule::Every(interval) => source.interval(*interval),
                PollSchedule::Cron(cron) => source.schedule(cron.clone()),
            })
        }
    };
    Box::new(StartWhenNew {
        inner,
        from: plan.from.clone(),
    })
}

/// Starts at the source's own `from` unless the streamer resumes it from a position (a
/// checkpoint or a reconnect): the streamer has one `start_from` for all its sources, and
/// each source here has its own.
struct StartWhenNew {
    inner: Box<dyn Source>,
    from: StartFrom,
}

#[async_trait::async_trait]
impl Source for StartWhenNew {
    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let from = match from {
            resume @ StartFrom::Position(_) => resume,
            StartFrom::Earliest | StartFrom::Latest | StartFrom::Snapshot => self.from.clone(),
        };
        self.inner.open(from, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records what it was opened with, and fails (nothing to stream).
    struct Recorder(Arc<Mutex<Vec<StartFrom>>>);

    #[async_trait::async_trait]
    impl Source for Recorder {
        fn kind(&self) -> SourceKind {
            SourceKind::MySql
        }
        async fn open(
            &mut self,
            from: StartFrom,
            _shutdown: CancellationToken,
        ) -> Result<Opened, SourceError> {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(from);
            }
            Err(SourceError::Unsupported {
                what: "recording only".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_source_starts_at_its_own_from_unless_resumed_from_a_position() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut source = StartWhenNew {
            inner: Box::new(Recorder(seen.clone())),
            from: StartFrom::Snapshot,
        };
        let position: StartFrom = "binlog:mysql-bin.000001:4+0".parse().expect("position");
        let _ = source
            .open(StartFrom::Latest, CancellationToken::new())
            .await;
        let _ = source
            .open(position.clone(), CancellationToken::new())
            .await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen, vec![StartFrom::Snapshot, position]);
    }
}
