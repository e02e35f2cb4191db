//! The tier behind the local one, shared by the processes of a deployment.
//!
//! The cache talks to it through [`RemoteTier`] only. [`NoRemote`] does nothing: it is the tier
//! of a cache built without the `redis` feature, or without `CacheConfig::redis`. The Redis
//! tier (`redis_tier.rs`) is the other implementation. [`open`] chooses between them, and is
//! the one place in the cache's code that knows about the feature.

use std::sync::Arc;

use stream_core::{Namespace, Row};

use crate::cache::Counters;
use crate::config::CacheConfig;
use crate::error::CacheError;

/// What a fill or write read of the remote tier before it asked the store: the tier's clock
/// and the tokens the row will be stored under (see "The Redis tier" in the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteTag {
    pub(crate) clock: u64,
    pub(crate) global: Arc<str>,
    pub(crate) ns: Arc<str>,
}

/// How a row is stored in the remote tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreMode {
    /// What a read found in the store.
    Fill,
    /// What a write through the streamer wrote.
    Write,
}

/// A second tier of rows, shared with other processes. None of its calls fail: a tier that
/// stops answering is logged and counted by the implementation, and the cache goes on with its
/// local tier and the store.
#[async_trait::async_trait]
pub(crate) trait RemoteTier: Send + Sync {
    /// `false` only for [`NoRemote`]. The cache's extra steps against races with other
    /// processes (a second invalidation of the local entry once the remote one is gone, killing
    /// fills that read the remote tier before a write reached it) are needed only with a tier.
    fn is_present(&self) -> bool;

    /// What a row read from the store from now on would be stored under; `None` while this
    /// process has not yet looked `ns` up in the tier (or there is no tier): nothing is shared.
    fn tag(&self, ns: &Namespace) -> Option<RemoteTag>;

    /// The row stored for this key: `Some(None)` is a stored "no such row"; `None` is nothing
    /// usable (absent, invalidated, stale, unreadable, no connection, or no tier).
    async fn get(&self, ns: &Namespace, key_json: &str) -> Option<Option<Row>>;

    /// Stores a row (`None`: no such row) read or written after `tag` was taken, unless the key
    /// was invalidated since, by any process.
    async fn store(
        &self,
        ns: &Namespace,
        key_json: &str,
        tag: &RemoteTag,
        row: Option<&Row>,
        mode: StoreMode,
    );

    /// Invalidates a key for every process sharing the tier.
    async fn invalidate_key(&self, ns: &Namespace, key_json: &str);

    /// Invalidates every row of `ns` for every process.
    async fn invalidate_namespace(&self, ns: &Namespace);

    /// Invalidates every row for every process.
    async fn invalidate_all(&self);

    /// An invalidation could not be sent (no runtime to send it from): the tier must not serve
    /// until it could drop everything it holds.
    fn lost_invalidation(&self);

    /// Whether the tier answers now (`Ok` when there is none).
    async fn ping(&self) -> Result<(), CacheError>;
}

/// No remote tier: nothing is shared, every call does nothing.
pub(crate) struct NoRemote;

#[async_trait::async_trait]
impl RemoteTier for NoRemote {
    fn is_present(&self) -> bool {
        false
    }

    fn tag(&self, _: &Namespace) -> Option<RemoteTag> {
        None
    }

    async fn get(&self, _: &Namespace, _: &str) -> Option<Option<Row>> {
        None
    }

    async fn store(&self, _: &Namespace, _: &str, _: &RemoteTag, _: Option<&Row>, _: StoreMode) {}

    async fn invalidate_key(&self, _: &Namespace, _: &str) {}

    async fn invalidate_namespace(&self, _: &Namespace) {}

    async fn invalidate_all(&self) {}

    fn lost_invalidation(&self) {}

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

/// The remote tier `config` asks for: Redis with the `redis` feature and `config.redis` set
/// (an unreachable server is logged and retried later, not an error), otherwise [`NoRemote`].
pub(crate) async fn open(
    config: &CacheConfig,
    counters: &Arc<Counters>,
) -> Result<Box<dyn RemoteTier>, CacheError> {
    #[cfg(feature = "redis")]
    if let Some(tier) = &config.redis {
        let redis = crate::redis_tier::RedisL2::connect(tier, counters.clone()).await?;
        return Ok(Box::new(redis));
    }
    #[cfg(not(feature = "redis"))]
    let _ = (config, counters);
    Ok(Box::new(NoRemote))
}
