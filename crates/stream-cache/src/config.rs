//! The cache's settings, checked before anything is built.

use std::time::Duration;

use crate::error::CacheError;

/// The longest TTL accepted (moka refuses more than 1000 years; nobody means more than ten).
const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Settings of a [`Cache`](crate::Cache).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// How many rows (and "no such row" answers) the local tier holds; the least recently used
    /// is evicted beyond. At least 1. Default 10 000.
    pub max_entries: u64,
    /// How long a local entry lives after it was stored, however often it is read; `None`
    /// keeps entries until evicted or invalidated. The bound on staleness when a change event
    /// never arrives. Default 5 minutes.
    pub ttl: Option<Duration>,
    /// How many query results the local tier holds (each counts as one, whatever its number of
    /// rows); 0 turns caching of queries off. Default 1 000.
    pub max_query_results: u64,
    /// A Redis tier shared by several processes; `None` (the default) for none.
    #[cfg(feature = "redis")]
    pub redis: Option<RedisTier>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            ttl: Some(Duration::from_secs(300)),
            max_query_results: 1_000,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl CacheConfig {
    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), CacheError> {
        let err = |field, reason: &str| {
            Err(CacheError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_entries == 0 {
            return err("cache.max_entries", "must be at least 1");
        }
        match self.ttl {
            Some(ttl) if ttl.is_zero() => {
                return err(
                    "cache.ttl",
                    "must be longer than zero (leave it unset for no expiry)",
                );
            }
            Some(ttl) if ttl > MAX_TTL => {
                return err(
                    "cache.ttl",
                    "must be at most 10 years (leave it unset for no expiry)",
                );
            }
            _ => {}
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        Ok(())
    }
}

/// A Redis tier behind the local one: rows missing locally are looked up there before the
/// store, and every row cached locally is stored there too, so that processes sharing it
/// share their reads. See the crate documentation for how it stays fresh.
#[cfg(feature = "redis")]
#[derive(Clone, PartialEq)]
pub struct RedisTier {
    /// `redis://[user][:password@]host[:port][/db]` (or `rediss://`).
    pub url: String,
    /// Prefix of every key this cache writes. Default `ustream`.
    pub prefix: String,
    /// How long a row lives in Redis. Default 5 minutes.
    pub ttl: Duration,
    /// The longest wait for Redis (connecting or one command) before falling back to the
    /// store. Default 250 ms.
    pub timeout: Duration,
}

#[cfg(feature = "redis")]
impl RedisTier {
    /// A tier at `url` with the default prefix, TTL and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "ustream".to_owned(),
            ttl: Duration::from_secs(300),
            timeout: Duration::from_millis(250),
        }
    }

    fn validate(&self) -> Result<(), CacheError> {
        let err = |field, reason: String| Err(CacheError::Config { field, reason });
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            let reason = crate::redis_tier::scrub(&e.to_string(), &self.url);
            return err(
                "cache.redis.url",
                format!(
                    "must be a Redis URL like redis://[:password@]host[:port][/db], not {}: {reason}",
                    stream_core::redact_url(&self.url)
                ),
            );
        }
        if self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return err(
                "cache.redis.prefix",
                "must be non-empty, without spaces or control characters".to_owned(),
            );
        }
        if self.ttl < Duration::from_millis(1) || self.ttl > MAX_TTL {
            return err(
                "cache.redis.ttl",
                "must be between 1 ms and 10 years".to_owned(),
            );
        }
        if self.timeout.is_zero() {
            return err("cache.redis.timeout", "must be longer than zero".to_owned());
        }
        Ok(())
    }
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &stream_core::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_field() {
        assert!(CacheConfig::default().validate().is_ok());
        let bad = CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        };
        let err = bad.validate().expect_err("zero entries");
        assert_eq!(err.to_string(), "cache.max_entries must be at least 1");
        let bad = CacheConfig {
            ttl: Some(Duration::ZERO),
            ..CacheConfig::default()
        };
        let err = bad.validate().expect_err("zero ttl");
        assert!(err.to_string().starts_with("cache.ttl "), "{err}");
        let bad = CacheConfig {
            ttl: Some(Duration::from_secs(u64::MAX)),
            ..CacheConfig::default()
        };
        assert!(bad.validate().is_err());
        let ok = CacheConfig {
            ttl: None,
            max_query_results: 0,
            ..CacheConfig::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_settings_are_checked_without_showing_the_password() {
        let with = |tier: RedisTier| CacheConfig {
            redis: Some(tier),
            ..CacheConfig::default()
        };
        assert!(
            with(RedisTier::new("redis://:pw@127.0.0.1:6379/0"))
                .validate()
                .is_ok()
        );
        let err = with(RedisTier::new("http://:hunter2@example.com"))
            .validate()
            .expect_err("not redis");
        let text = err.to_string();
        assert!(text.starts_with("cache.redis.url "), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let mut tier = RedisTier::new("redis://127.0.0.1");
        tier.prefix = String::new();
        let err = with(tier.clone()).validate().expect_err("empty prefix");
        assert!(err.to_string().starts_with("cache.redis.prefix "));
        tier.prefix = "p".into();
        tier.ttl = Duration::ZERO;
        let err = with(tier).validate().expect_err("zero ttl");
        assert!(err.to_string().starts_with("cache.redis.ttl "));
        let debug = format!("{:?}", RedisTier::new("redis://u:hunter2@h:1"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
