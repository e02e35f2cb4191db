//! The cache's settings, checked before anything is built.

use std::time::Duration;

use crate::error::CacheError;

/// The longest TTL accepted (moka refuses more than 1000 years; nobody means more than ten).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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
    pub redis: Option<crate::RedisTier>,
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
}
