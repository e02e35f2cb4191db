//! Checkpoints: where each pipeline resumes, moving only forward.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::position::Position;

/// A saved resume point, with optional source state (e.g. a binlog reader's schema history)
/// that must be restored together with the position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where to resume.
    pub position: Position,
    /// Source-specific state tied to this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

impl Checkpoint {
    /// A checkpoint with no extra state.
    pub fn at(position: Position) -> Self {
        Self {
            position,
            state: None,
        }
    }
}

/// What can go wrong while loading or saving checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Saving would move the pipeline backwards.
    #[error("checkpoint for `{pipeline}` would move backwards from {stored} to {attempted}")]
    Backwards {
        /// The pipeline.
        pipeline: String,
        /// The position already saved.
        stored: String,
        /// The older position that was refused.
        attempted: String,
    },
    /// The pipeline name cannot be used as a key.
    #[error(
        "invalid pipeline name `{pipeline}`: use letters, digits, `-`, `_` and `.` (not leading)"
    )]
    InvalidName {
        /// The rejected name.
        pipeline: String,
    },
    /// Reading or writing the store failed.
    #[error("checkpoint store I/O on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored checkpoint cannot be read back.
    #[error("checkpoint file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why it cannot be parsed.
        reason: String,
    },
}

/// Durable storage of checkpoints, keyed by pipeline name.
///
/// Contract: `save` returns only once the checkpoint is durable; a position never moves
/// backwards (`save` of a position known to be older than the stored one is refused with
/// [`CheckpointError::Backwards`]; positions that cannot be ordered, like MongoDB tokens, are
/// accepted); callers save only after their sinks confirmed every event up to the position.
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The last saved checkpoint of `pipeline`, if any.
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError>;

    /// Durably records `checkpoint` for `pipeline`.
    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
}

/// A shared store is a store: the one a builder takes can also be read by its owner.
#[async_trait::async_trait]
impl<T: CheckpointStore + ?Sized> CheckpointStore for std::sync::Arc<T> {
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        (**self).load(pipeline).await
    }

    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        (**self).save(pipeline, checkpoint).await
    }
}

fn check_forward(
    pipeline: &str,
    stored: Option<&Checkpoint>,
    next: &Checkpoint,
) -> Result<(), CheckpointError> {
    if let Some(stored) = stored
        && next.position.compare(&stored.position) == Some(std::cmp::Ordering::Less)
    {
        return Err(CheckpointError::Backwards {
            pipeline: pipeline.to_owned(),
            stored: stored.position.to_string(),
            attempted: next.position.to_string(),
        });
    }
    Ok(())
}

fn validate_name(pipeline: &str) -> Result<(), CheckpointError> {
    let ok = !pipeline.is_empty()
        && pipeline.len() <= 200
        && !pipeline.starts_with('.')
        && pipeline
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CheckpointError::InvalidName {
            pipeline: pipeline.to_owned(),
        })
    }
}

/// Checkpoints in memory, for tests and for pipelines that do not need to survive a restart.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    saved: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        validate_name(pipeline)?;
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        Ok(saved.get(pipeline).cloned())
    }

    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        validate_name(pipeline)?;
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        check_forward(pipeline, saved.get(pipeline), checkpoint)?;
        saved.insert(pipeline.to_owned(), checkpoint.clone());
        Ok(())
    }
}

/// One JSON file per pipeline in a directory, replaced atomically: write a temporary file,
/// fsync it, rename it over the old one, fsync the directory. A crash at any moment leaves
/// either the old or the new checkpoint, never a torn one. Files are readable by their owner
/// only (mode 0600 on Unix): checkpoints may hold key values.
#[derive(Debug)]
pub struct FileCheckpointStore {
    dir: PathBuf,
    // Serialises saves so the forward check and the rename are one step per store.
    lock: tokio::sync::Mutex<()>,
}

impl FileCheckpointStore {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file that holds `pipeline`'s checkpoint.
    pub fn path_of(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{pipeline}.checkpoint.json"))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Writes `bytes` to a new temporary file in `dir` (created exclusively under a random name,
/// mode 0600: checkpoints hold key values), fsyncs it, renames it over `path` and fsyncs `dir`.
/// The exclusive create never follows a link planted where the temporary file goes, and the
/// rename replaces a link at `path` instead of writing through it.
fn write_file_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    // The rename itself is durable only once the directory entry is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

async fn blocking<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CheckpointError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })?
}

#[async_trait::async_trait]
impl CheckpointStore for FileCheckpointStore {
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        validate_name(pipeline)?;
        let path = self.path_of(pipeline);
        blocking(path.clone(), move || read_file(&path)).await
    }

    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        validate_name(pipeline)?;
        let _serial = self.lock.lock().await;
        let path = self.path_of(pipeline);
        let dir = self.dir.clone();
        let pipeline = pipeline.to_owned();
        let checkpoint = checkpoint.clone();
        blocking(path.clone(), move || {
            check_forward(&pipeline, read_file(&path)?.as_ref(), &checkpoint)?;
            let bytes =
                serde_json::to_vec_pretty(&checkpoint).map_err(|e| CheckpointError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            write_file_atomically(&dir, &path, &bytes)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(s: &str) -> Checkpoint {
        Checkpoint::at(s.parse().expect(s))
    }

    #[tokio::test]
    async fn file_store_round_trips_with_state_and_refuses_to_go_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path().join("state"));
        assert_eq!(store.load("orders").await.expect("load"), None);
        let mut first = cp("binlog:mysql-bin.000002:400+3");
        first.state = Some(serde_json::json!({"schema": {"shop.orders": ["id", "total"]}}));
        store.save("orders", &first).await.expect("save");
        assert_eq!(
            store.load("orders").await.expect("load"),
            Some(first.clone())
        );

        let err = store
            .save("orders", &cp("binlog:mysql-bin.000002:400+2"))
            .await
            .expect_err("backwards");
        assert!(matches!(err, CheckpointError::Backwards { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("from binlog:mysql-bin.000002:400+3")
        );
        assert_eq!(store.load("orders").await.expect("load"), Some(first));

        store
            .save("orders", &cp("binlog:mysql-bin.000003:4+0"))
            .await
            .expect("forward");
        // A different history cannot be ordered: accepted (e.g. after a re-snapshot).
        store
            .save("orders", &cp("mongodb:AAAA"))
            .await
            .expect("incomparable");
    }

    #[tokio::test]
    async fn a_torn_temporary_file_never_replaces_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path());
        let saved = cp("mariadb-gtid:0-1-9+0");
        store.save("p", &saved).await.expect("save");
        // What a crash in the middle of the next save leaves behind.
        std::fs::write(
            dir.path().join("p.checkpoint.json.tmp-999"),
            b"{\"position\":\"mar",
        )
        .expect("write");
        assert_eq!(store.load("p").await.expect("load"), Some(saved));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_planted_at_the_old_temporary_path_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("victim");
        let store = FileCheckpointStore::new(dir.path());
        let planted = dir
            .path()
            .join(format!("p.checkpoint.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).expect("plant");

        let saved = cp("binlog:b.000001:4+0");
        store.save("p", &saved).await.expect("save");

        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "precious"
        );
        assert_eq!(std::fs::read_link(&planted).expect("still a link"), victim);
        assert!(
            !std::fs::symlink_metadata(store.path_of("p"))
                .expect("checkpoint")
                .file_type()
                .is_symlink()
        );
        assert_eq!(store.load("p").await.expect("load"), Some(saved));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn checkpoint_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path());
        // A file an older version left readable by everyone becomes private on the next save.
        std::fs::write(store.path_of("p"), br#"{"position":"binlog:b.000001:4+0"}"#)
            .expect("old file");
        std::fs::set_permissions(store.path_of("p"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        store
            .save("p", &cp("binlog:b.000001:8+0"))
            .await
            .expect("save");
        let mode = std::fs::metadata(store.path_of("p"))
            .expect("checkpoint")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[tokio::test]
    async fn corrupt_files_and_bad_names_are_reported_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path());
        std::fs::write(store.path_of("bad"), b"not json").expect("write");
        let err = store.load("bad").await.expect_err("corrupt");
        assert!(
            err.to_string().contains("bad.checkpoint.json is corrupt"),
            "{err}"
        );
        for name in ["", "../etc", "a/b", ".hidden"] {
            let err = store.load(name).await.expect_err(name);
            assert!(
                matches!(err, CheckpointError::InvalidName { .. }),
                "{name}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn memory_store_keeps_the_same_contract() {
        let store = MemoryCheckpointStore::new();
        store
            .save("p", &cp("binlog:b.000001:10+0"))
            .await
            .expect("save");
        assert!(store.save("p", &cp("binlog:b.000001:9+0")).await.is_err());
        assert_eq!(
            store.load("p").await.expect("load"),
            Some(cp("binlog:b.000001:10+0"))
        );
    }
}
