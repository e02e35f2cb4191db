//! What the fuzz targets share: splitting one input into framed parts, and running decoders on
//! a stack the size of a tokio worker's (where the binlog source decodes in production).

use std::sync::{Mutex, OnceLock, mpsc};

/// Stack size of tokio's worker threads: deep recursion that fits the fuzzer's 8 MiB main
/// thread may not fit there.
pub const WORKER_STACK: usize = 2 << 20;

type Job = Box<dyn FnOnce() + Send>;

/// The one thread with a tokio worker's stack that runs every input, started with the first.
/// A thread per input cost more than most inputs: its stack and AddressSanitizer's fake stack
/// were mapped, faulted in page by page and unmapped again each time (half of `binlog_events`'
/// time went to the kernel's page faults).
fn worker() -> &'static Mutex<mpsc::Sender<Job>> {
    static WORKER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || queue.into_iter().for_each(|job| job()));
        if let Err(e) = started {
            panic!("cannot start a worker thread: {e}");
        }
        Mutex::new(jobs)
    })
}

/// Runs `f` on a thread with a tokio worker's stack (one thread, kept for every input); a
/// panic in it is a panic here.
pub fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    let sent = worker()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(job);
    if sent.is_err() {
        panic!("the worker thread is gone");
    }
    match result.recv() {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the worker thread is gone"),
    }
}

/// Reads parts out of one fuzz input: single bytes, chunks with a little-endian `u16` length
/// before them (cut short where the input ends), and the rest.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    data: &'a [u8],
}

impl<'a> Frames<'a> {
    /// The parts of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, or 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next length-prefixed chunk.
    pub fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
        let (chunk, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        chunk
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Writes `parts` as [`Frames`] reads them back with `byte` for each of `bytes`, `chunk` for
/// each of `chunks`, then `rest`: how seed inputs are made.
pub fn frame(bytes: &[u8], chunks: &[&[u8]], rest: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for chunk in chunks {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&chunk[..usize::from(len)]);
    }
    out.extend_from_slice(rest);
    out
}

/// The statements of a DDL chunk: the default database, then statements, `\0`-separated.
pub fn ddl_statements(chunk: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(chunk);
    let mut parts = text.split('\0').map(str::to_owned);
    let db = parts.next().unwrap_or_default();
    (db, parts.filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_what_frame_wrote() {
        let input = frame(&[7], &[b"ab", b""], b"rest");
        let mut f = Frames::new(&input);
        assert_eq!(f.byte(), 7);
        assert_eq!(f.chunk(), b"ab");
        assert_eq!(f.chunk(), b"");
        assert_eq!(f.rest(), b"rest");
        let mut short = Frames::new(&[5, 0, b'x']);
        assert_eq!(short.chunk(), b"x");
        assert_eq!(short.byte(), 0);
    }
}
