//! A probe whose answers a test controls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use stream_core::Position;

use stream_core::Probe;

/// Answers pings unless set down; hangs forever while `hang`; reports `server` as its position.
#[derive(Debug)]
pub(crate) struct FakeProbe {
    down: AtomicBool,
    hang: AtomicBool,
    server: Mutex<Result<Option<Position>, String>>,
    pings: AtomicU32,
}

impl FakeProbe {
    pub(crate) fn new() -> Self {
        Self {
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            server: Mutex::new(Ok(None)),
            pings: AtomicU32::new(0),
        }
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.down.store(!up, Ordering::SeqCst);
    }

    pub(crate) fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }

    /// The server's position becomes `binlog:mysql-bin.000001:<offset>+0`.
    pub(crate) fn set_server_offset(&self, offset: u64) {
        *self.server.lock().expect("lock") = Ok(Some(pos(offset)));
    }

    pub(crate) fn set_server_error(&self, reason: &str) {
        *self.server.lock().expect("lock") = Err(reason.to_owned());
    }

    pub(crate) fn pings(&self) -> u32 {
        self.pings.load(Ordering::SeqCst)
    }
}

/// `binlog:mysql-bin.000001:<offset>+0`.
pub(crate) fn pos(offset: u64) -> Position {
    Position::binlog("mysql-bin.000001", offset, 0)
}

#[async_trait::async_trait]
impl Probe for FakeProbe {
    async fn ping(&self) -> Result<(), String> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            Err("connection refused".to_owned())
        } else {
            Ok(())
        }
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        self.server.lock().expect("lock").clone()
    }
}
