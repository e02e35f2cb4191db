//! [`FileDeadLetterQueue`]: dead letters in a JSON Lines file.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{DeadLetter, DeadLetterError, DeadLetterQueue};

/// Dead letters in a file, one JSON object per line (JSON Lines).
///
/// - `put` appends one line and fsyncs it (and the directory when it creates the file), so a
///   letter is on disk once `put` returns.
/// - A crash during `put` can leave a torn last line: reading skips it with a warning, and the
///   next `put` cuts it off before appending. Any other line that is not a letter is an error
///   ([`DeadLetterError::Corrupt`]) naming the line, since losing it silently would lose a
///   letter.
/// - `remove` writes the remaining letters to a new temporary file beside it (created
///   exclusively under a random name, so a link planted there is never followed), fsyncs it,
///   renames it over the file and fsyncs the directory: after a crash the file holds either
///   all letters or the remaining ones.
/// - Letters hold whole rows: on Unix the file is created readable by its owner only (0600),
///   and stays so when `remove` rewrites it.
///
/// Operations of one `FileDeadLetterQueue` are serialized. The file is meant for one process
/// at a time: another process appending while `remove` rewrites the file can lose its letter
/// (a rewrite starts over when it sees the file grow, which narrows but does not close that
/// window).
#[derive(Debug)]
pub struct FileDeadLetterQueue {
    path: PathBuf,
    state: Arc<Mutex<FileState>>,
}

#[derive(Debug, Default)]
struct FileState {
    /// Whether the file's end was checked for a torn line since this queue was opened.
    tail_checked: bool,
}

impl FileDeadLetterQueue {
    /// A queue in this file (created on the first `put`; a missing file is an empty queue).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            state: Arc::new(Mutex::new(FileState::default())),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a blocking thread while holding the queue's lock; the lock is held until `f`
    /// ends, even when the calling future is dropped.
    async fn with_lock<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path, &mut FileState) -> io::Result<Result<T, DeadLetterError>> + Send + 'static,
    ) -> Result<T, DeadLetterError> {
        let mut guard = Arc::clone(&self.state).lock_owned().await;
        let path = self.path.clone();
        let io_err = |path: &Path, source| DeadLetterError::Io {
            path: path.to_owned(),
            source,
        };
        let task_path = path.clone();
        match tokio::task::spawn_blocking(move || f(&task_path, &mut guard)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(io_err(&path, e)),
            Err(join) => Err(io_err(&path, io::Error::other(join.to_string()))),
        }
    }
}

#[async_trait::async_trait]
impl DeadLetterQueue for FileDeadLetterQueue {
    async fn put(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        let mut line = serde_json::to_vec(&letter).map_err(|e| DeadLetterError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        self.with_lock(move |path, state| {
            let created = !path.exists();
            let mut options = OpenOptions::new();
            options.read(true).append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            if !state.tail_checked {
                repair_tail(path, &mut file)?;
                state.tail_checked = true;
            }
            file.write_all(&line)?;
            file.sync_data()?;
            if created {
                sync_dir(path)?;
            }
            Ok(Ok(()))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        self.with_lock(|path, _| {
            let Some(bytes) = read_if_exists(path)? else {
                return Ok(Ok(Vec::new()));
            };
            Ok(parse_lines(path, &bytes))
        })
        .await
    }

    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: HashSet<String> = ids.iter().cloned().collect();
        self.with_lock(move |path, state| {
            const ATTEMPTS: usize = 5;
            for _ in 0..ATTEMPTS {
                let Some(bytes) = read_if_exists(path)? else {
                    return Ok(Ok(0));
                };
                let letters = match parse_lines(path, &bytes) {
                    Ok(letters) => letters,
                    Err(e) => return Ok(Err(e)),
                };
                let total = letters.len();
                let keep: Vec<&DeadLetter> =
                    letters.iter().filter(|l| !ids.contains(&l.id)).collect();
                let removed = total - keep.len();
                if removed == 0 {
                    return Ok(Ok(0));
                }
                let tmp = temp_file_beside(path)?;
                {
                    let mut out = io::BufWriter::new(tmp.as_file());
                    for letter in keep {
                        serde_json::to_writer(&mut out, letter).map_err(io::Error::other)?;
                        out.write_all(b"\n")?;
                    }
                    out.flush()?;
                }
                tmp.as_file().sync_all()?;
                // Another process appended meanwhile: start over rather than drop its letter
                // (dropping `tmp` deletes it).
                if fs::metadata(path)?.len() != bytes.len() as u64 {
                    continue;
                }
                tmp.persist(path).map_err(|e| e.error)?;
                sync_dir(path)?;
                state.tail_checked = true;
                return Ok(Ok(removed));
            }
            Err(io::Error::other(
                "the file kept changing while letters were removed; try again",
            ))
        })
        .await
    }
}

/// A new, empty temporary file in `path`'s directory, named after it (`dlq.jsonl.tmp-XXXXXX`),
/// created with `O_EXCL` (never through a link) and mode 0600.
fn temp_file_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(".tmp-");
    tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)
}

fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fsyncs the directory holding `path`, so a created or renamed entry survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some platforms cannot open or sync a directory; the data itself is synced.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) if cfg!(windows) => {
            tracing::debug!(error = %e, "cannot sync directory");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Parses the file's lines. Blank lines are ignored; the last line may be torn by a crash and
/// is skipped with a warning when it does not parse; any other bad line is an error.
fn parse_lines(path: &Path, bytes: &[u8]) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let mut letters = Vec::with_capacity(lines.len());
    for (i, (number, line)) in lines.iter().enumerate() {
        match serde_json::from_slice::<DeadLetter>(line) {
            Ok(letter) => letters.push(letter),
            Err(e) if i + 1 == lines.len() => {
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    bytes = line.len(),
                    error = %e,
                    "skipping a torn last line of the dead-letter file (a crash during a write)"
                );
            }
            Err(e) => {
                return Err(DeadLetterError::Corrupt {
                    path: path.to_owned(),
                    line: *number,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(letters)
}

/// Before the first append: cuts off a torn last line, or ends a complete last line that lacks
/// its newline, so the next letter starts on a line of its own.
fn repair_tail(path: &Path, file: &mut File) -> io::Result<()> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    let ends_with_newline = last[0] == b'\n';
    // Find where the last line starts, reading backwards in chunks.
    let search_end = if ends_with_newline { len - 1 } else { len };
    let mut start = 0;
    let mut pos = search_end;
    let mut chunk = Vec::new();
    while pos > 0 {
        let from = pos.saturating_sub(CHUNK);
        chunk.resize(usize::try_from(pos - from).unwrap_or(0), 0);
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        pos = from;
    }
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    file.read_to_end(&mut tail)?;
    if tail.iter().all(u8::is_ascii_whitespace) {
        if !ends_with_newline {
            file.write_all(b"\n")?;
        }
        return Ok(());
    }
    if serde_json::from_slice::<DeadLetter>(&tail).is_ok() {
        if !ends_with_newline {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
        return Ok(());
    }
    tracing::warn!(
        path = %path.display(),
        bytes = tail.len(),
        "cutting off a torn last line of the dead-letter file (a crash during a write)"
    );
    file.set_len(start)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::tests::letter;
    use stream_core::ErrorClass;

    #[tokio::test]
    async fn file_queue_keeps_letters_across_reopen_and_removes_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let queue = FileDeadLetterQueue::new(&path);
        assert!(queue.list().await.expect("empty").is_empty());
        assert_eq!(queue.remove(&["x".to_owned()]).await.expect("none"), 0);
        let letters: Vec<_> = (1..=4).map(letter).collect();
        for l in &letters {
            queue.put(l.clone()).await.expect("put");
        }
        drop(queue);

        let queue = FileDeadLetterQueue::new(&path);
        assert_eq!(queue.list().await.expect("list"), letters);
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 4, "one JSON object per line");
        assert!(text.ends_with('\n'));

        let gone = vec![
            letters[1].id.clone(),
            letters[3].id.clone(),
            "nope".to_owned(),
        ];
        assert_eq!(queue.remove(&gone).await.expect("remove"), 2);
        assert_eq!(
            queue.list().await.expect("list"),
            vec![letters[0].clone(), letters[2].clone()]
        );
        let files: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(files, ["dlq.jsonl"], "no temp file left behind");
        let fifth = letter(5);
        queue.put(fifth.clone()).await.expect("put after remove");
        let reopened = FileDeadLetterQueue::new(&path);
        assert_eq!(
            reopened.list().await.expect("list"),
            vec![letters[0].clone(), letters[2].clone(), fifth]
        );
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_on_read_and_cut_off_on_the_next_put() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let queue = FileDeadLetterQueue::new(&path);
        let (first, second) = (letter(1), letter(2));
        queue.put(first.clone()).await.expect("put");
        queue.put(second.clone()).await.expect("put");
        drop(queue);
        // A crash in the middle of writing the third letter.
        let third = serde_json::to_string(&letter(3)).expect("json");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&third.as_bytes()[..third.len() / 2])
            .expect("write");
        drop(f);

        let queue = FileDeadLetterQueue::new(&path);
        assert_eq!(
            queue.list().await.expect("torn line is no error"),
            vec![first, second]
        );
        queue.put(letter(4)).await.expect("put after crash");
        let letters = queue.list().await.expect("list");
        assert_eq!(letters.len(), 3);
        assert_eq!(letters[2].reason, "SMTP 550 #4");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 3, "the torn line is gone: {text}");
    }

    #[tokio::test]
    async fn a_complete_last_line_without_newline_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let first = letter(1);
        fs::write(&path, serde_json::to_string(&first).expect("json")).expect("write");
        let queue = FileDeadLetterQueue::new(&path);
        assert_eq!(queue.list().await.expect("list"), vec![first.clone()]);
        queue.put(letter(2)).await.expect("put");
        let letters = queue.list().await.expect("list");
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0], first);
    }

    #[tokio::test]
    async fn a_bad_line_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let good = serde_json::to_string(&letter(1)).expect("json");
        fs::write(&path, format!("{good}\n\nnot json\n{good}\n")).expect("write");
        let err = FileDeadLetterQueue::new(&path)
            .list()
            .await
            .expect_err("corrupt");
        assert!(
            matches!(err, DeadLetterError::Corrupt { line: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_planted_at_the_old_temporary_path_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").expect("victim");
        let planted = dir.path().join("dlq.jsonl.tmp");
        std::os::unix::fs::symlink(&victim, &planted).expect("plant");
        let queue = FileDeadLetterQueue::new(&path);
        let letters: Vec<_> = (1..=3).map(letter).collect();
        for l in &letters {
            queue.put(l.clone()).await.expect("put");
        }

        assert_eq!(
            queue
                .remove(&[letters[0].id.clone()])
                .await
                .expect("remove"),
            1
        );

        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
        assert_eq!(fs::read_link(&planted).expect("still a link"), victim);
        let kind = fs::symlink_metadata(&path).expect("file").file_type();
        assert!(
            kind.is_file(),
            "the dead-letter file is a plain file: {kind:?}"
        );
        assert_eq!(queue.list().await.expect("list"), letters[1..]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn dead_letter_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dlq.jsonl");
        let queue = FileDeadLetterQueue::new(&path);
        let mode = || fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        let (first, second) = (letter(1), letter(2));
        queue.put(first.clone()).await.expect("put");
        assert_eq!(mode(), 0o600, "created by put");
        queue.put(second).await.expect("put");
        queue.remove(&[first.id]).await.expect("remove");
        assert_eq!(mode(), 0o600, "rewritten by remove");
    }
}
