//! A probe whose answers a test controls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stream_core::{Position, Probe};
use tokio::sync::watch;

/// Answers pings unless set down; hangs forever while `hang`; reports `server` as its position.
#[derive(Debug)]
pub(crate) struct FakeProbe {
    down: AtomicBool,
    hang: AtomicBool,
    server: Mutex<Result<Option<Position>, String>>,
    /// Pings started so far; tests wait on it instead of sleeping.
    pings: watch::Sender<u32>,
}

impl FakeProbe {
    pub(crate) fn new() -> Self {
        Self {
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            server: Mutex::new(Ok(None)),
            pings: watch::Sender::new(0),
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
        *self.pings.borrow()
    }

    /// Returns once `n` pings have started; fails the test after a minute (of paused time,
    /// which passes at once when nothing else can run).
    pub(crate) async fn wait_for_pings(&self, n: u32) {
        let mut pings = self.pings.subscribe();
        let started = tokio::time::timeout(Duration::from_secs(60), pings.wait_for(|p| *p >= n));
        match started.await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("the probe is gone"),
            Err(_) => panic!(
                "{n} pings did not start within a minute; {} did",
                self.pings()
            ),
        }
    }
}

/// `binlog:mysql-bin.000001:<offset>+0`.
pub(crate) fn pos(offset: u64) -> Position {
    Position::binlog("mysql-bin.000001", offset, 0)
}

#[async_trait::async_trait]
impl Probe for FakeProbe {
    async fn ping(&self) -> Result<(), String> {
        self.pings.send_modify(|p| *p += 1);
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
