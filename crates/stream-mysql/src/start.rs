//! Where a stream starts: `StartFrom` resolved against the server's binary logs to a binlog
//! file position or a MariaDB GTID state, plus the snapshot to read first, if any.

use std::sync::Arc;

use mysql_async::Conn;
use stream_core::{
    ErrorClass, MariaDbGtidList, MySqlPosition, Position, SnapshotProgress, SourceError, StartFrom,
    TxnStart,
};

use crate::MySqlConfig;
use crate::server::{connect, gtid_state_at};
use crate::view_filter::ViewFilter;

/// A binlog file position: the transaction starting at `offset` and rows of it to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilePos {
    pub(crate) file: Arc<str>,
    pub(crate) offset: u64,
    pub(crate) skip: u64,
}

impl FilePos {
    pub(crate) fn position(&self) -> Position {
        Position::binlog(self.file.clone(), self.offset, self.skip)
    }
}

/// Where the binlog resumes, in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The file form, used to reconnect; an empty file name means "request the stream by the
    /// GTID state" (a GTID position given to `open`, before the server named its file).
    pub(crate) file: FilePos,
    /// GTID mode: the state before the open transaction, and rows of it delivered.
    pub(crate) gtid: Option<(MariaDbGtidList, u64)>,
}

impl Resume {
    /// The position shown downstream: GTID form in GTID mode, else the file form.
    pub(crate) fn position(&self) -> Position {
        match &self.gtid {
            Some((state, skip)) => Position::MySql(MySqlPosition {
                start: TxnStart::MariaDbGtid(state.clone()),
                skip: *skip,
            }),
            None => self.file.position(),
        }
    }

    /// The stream is requested by GTID state rather than by file position.
    pub(crate) fn by_gtid(&self) -> bool {
        self.file.file.is_empty()
    }
}

/// A file position of `from`, checked against the binary logs the server has (`SHOW BINARY
/// LOGS`, oldest first).
pub(crate) fn resolve_start(
    from: &StartFrom,
    logs: &[(String, u64)],
) -> Result<FilePos, SourceError> {
    let oldest = logs.first().ok_or_else(|| SourceError::Prerequisite {
        setting: "binary logs".into(),
        expected: "at least one binlog file".into(),
        actual: "none (SHOW BINARY LOGS is empty)".into(),
    })?;
    match from {
        StartFrom::Earliest => Ok(FilePos {
            file: oldest.0.as_str().into(),
            offset: 4,
            skip: 0,
        }),
        StartFrom::Latest => {
            let (file, size) = logs.last().unwrap_or(oldest);
            Ok(FilePos {
                file: file.as_str().into(),
                offset: *size,
                skip: 0,
            })
        }
        StartFrom::Position(Position::MySql(MySqlPosition {
            start: TxnStart::File { file, offset },
            skip,
        })) => {
            if !logs.iter().any(|(f, _)| **f == **file) {
                let newest = logs.last().map_or(oldest.0.as_str(), |l| l.0.as_str());
                let purged = compare_files(file, &oldest.0).is_some_and(|o| o.is_lt())
                    || compare_files(file, newest).is_none();
                if purged {
                    return Err(SourceError::PositionPurged {
                        requested: Position::binlog(file.clone(), *offset, *skip).to_string(),
                        oldest: Position::binlog(oldest.0.clone(), 4, 0).to_string(),
                    });
                }
                return Err(SourceError::Other {
                    reason: format!(
                        "binlog file {file} does not exist on the server yet (newest is {newest})"
                    ),
                    class: ErrorClass::Definite,
                });
            }
            Ok(FilePos {
                file: file.clone(),
                offset: *offset,
                skip: *skip,
            })
        }
        StartFrom::Snapshot => Err(SourceError::Unsupported {
            what: "a snapshot is not a binlog position".into(),
        }),
        StartFrom::Position(other) => Err(SourceError::Unsupported {
            what: format!(
                "starting a MySQL/MariaDB stream from position {other} (only binlog file positions are supported so far)"
            ),
        }),
    }
}

fn compare_files(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    Position::binlog(a, 0, 0).compare(&Position::binlog(b, 0, 0))
}

/// A snapshot to read before the binlog: its connection with the consistent-snapshot
/// transaction open, and where to continue inside it (table, last key) when resuming.
pub(crate) type PendingSnapshot = (Conn, Option<(String, Option<String>)>);

/// Everything `open` needs to start reading.
pub(crate) struct Plan {
    /// Where the binlog part starts.
    pub(crate) resume: Resume,
    /// What `Opened::start` reports.
    pub(crate) shown: Position,
    pub(crate) snapshot: Option<PendingSnapshot>,
    pub(crate) view_filter: Option<ViewFilter>,
}

/// Resolves `from`. A GTID position switches `config` to GTID positions; in GTID mode the
/// state at a file position is looked up once, here.
pub(crate) async fn plan(
    config: &mut MySqlConfig,
    conn: &mut Conn,
    logs: &[(String, u64)],
    from: &StartFrom,
) -> Result<Plan, SourceError> {
    let mut gtid = None;
    let mut snapshot = None;
    let mut view_filter = None;
    let (file, shown) = match from {
        StartFrom::Snapshot => {
            let mut snap_conn = connect(config).await?;
            let (file, offset) = crate::snapshot::begin(config, &mut snap_conn).await?;
            let shown = Position::MySql(MySqlPosition {
                start: TxnStart::Snapshot(SnapshotProgress {
                    file: file.clone(),
                    offset,
                    table: String::new(),
                    after: None,
                }),
                skip: 0,
            });
            snapshot = Some((snap_conn, None));
            let file = FilePos {
                file: file.into(),
                offset,
                skip: 0,
            };
            (file, Some(shown))
        }
        StartFrom::Position(
            p @ Position::MySql(MySqlPosition {
                start: TxnStart::Snapshot(progress),
                ..
            }),
        ) => {
            let binlog = Position::binlog(progress.file.clone(), progress.offset, 0);
            let start = resolve_start(&StartFrom::Position(binlog), logs)?;
            let mut snap_conn = connect(config).await?;
            let (view_file, view_offset) = crate::snapshot::begin(config, &mut snap_conn).await?;
            view_filter = ViewFilter::new(
                progress,
                FilePos {
                    file: view_file.into(),
                    offset: view_offset,
                    skip: 0,
                },
            );
            snapshot = Some((
                snap_conn,
                Some((progress.table.clone(), progress.after.clone())),
            ));
            (start, Some(p.clone()))
        }
        StartFrom::Position(
            p @ Position::MySql(MySqlPosition {
                start: TxnStart::MariaDbGtid(state),
                skip,
            }),
        ) => {
            config.gtid_positions = true;
            gtid = Some((state.clone(), *skip));
            // No file yet: the server finds the transaction after this GTID state.
            let file = FilePos {
                file: "".into(),
                offset: 4,
                skip: 0,
            };
            (file, Some(p.clone()))
        }
        other => (resolve_start(other, logs)?, None),
    };
    if config.gtid_positions && gtid.is_none() {
        let state = gtid_state_at(config, conn, &file.file, file.offset).await?;
        gtid = Some((state, file.skip));
    }
    let resume = Resume { file, gtid };
    let shown = shown.unwrap_or_else(|| resume.position());
    Ok(Plan {
        resume,
        shown,
        snapshot,
        view_filter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> Vec<(String, u64)> {
        vec![
            ("mysql-bin.000003".to_owned(), 1000),
            ("mysql-bin.000004".to_owned(), 2500),
        ]
    }

    #[test]
    fn start_and_end_resolve_to_the_oldest_and_newest_file() {
        assert_eq!(
            resolve_start(&StartFrom::Earliest, &logs()).expect("start"),
            FilePos {
                file: "mysql-bin.000003".into(),
                offset: 4,
                skip: 0
            }
        );
        assert_eq!(
            resolve_start(&StartFrom::Latest, &logs()).expect("end"),
            FilePos {
                file: "mysql-bin.000004".into(),
                offset: 2500,
                skip: 0
            }
        );
    }

    #[test]
    fn a_file_older_than_the_oldest_is_purged_and_a_newer_one_does_not_exist_yet() {
        let at = |file: &str| StartFrom::Position(Position::binlog(file, 120, 3));
        let purged = resolve_start(&at("mysql-bin.000001"), &logs()).expect_err("purged");
        assert_eq!(
            purged.to_string(),
            "position binlog:mysql-bin.000001:120+3 is no longer on the server; the oldest \
             available is binlog:mysql-bin.000003:4+0 (re-snapshot to continue)"
        );
        let future = resolve_start(&at("mysql-bin.000009"), &logs()).expect_err("future");
        assert!(
            future
                .to_string()
                .contains("does not exist on the server yet"),
            "{future}"
        );
        let kept = resolve_start(&at("mysql-bin.000004"), &logs()).expect("present");
        assert_eq!((kept.offset, kept.skip), (120, 3));
        assert!(resolve_start(&StartFrom::Earliest, &[]).is_err());
    }

    #[test]
    fn resume_points_show_the_gtid_form_in_gtid_mode() {
        let file = FilePos {
            file: "mysql-bin.000001".into(),
            offset: 1379,
            skip: 5,
        };
        let by_file = Resume {
            file: file.clone(),
            gtid: None,
        };
        assert_eq!(
            by_file.position().to_string(),
            "binlog:mysql-bin.000001:1379+5"
        );
        let state: MariaDbGtidList = "0-1-7".parse().expect("state");
        let by_gtid = Resume {
            file,
            gtid: Some((state, 5)),
        };
        assert_eq!(by_gtid.position().to_string(), "mariadb-gtid:0-1-7+5");
        assert!(!by_gtid.by_gtid());
    }
}
