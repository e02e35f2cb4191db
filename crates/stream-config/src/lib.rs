//! Load a YAML config file into any [`serde::de::DeserializeOwned`] type, with:
//!
//! - **`${VAR}` references** in values, taken from the environment (`${VAR:-default}` for a
//!   default, `$${` for a literal `${`). A variable that is not set is an error naming it.
//!   A plain value is typed after substitution, so `port: ${PORT}` is a number; quote it
//!   (`"${PORT}"`) to keep text.
//! - **Environment overrides**: with the prefix `USTREAM`, `USTREAM__SINKS__WAREHOUSE__DELETES=hard`
//!   sets `sinks.warehouse.deletes` (a double underscore nests). Each step matches an
//!   existing key regardless of case; a key that does not exist is created, so a misspelt
//!   override fails as an unknown key. The value is read as a YAML scalar (`5` is a number),
//!   or a flow list or mapping when it starts with `[` or `{`.
//! - **Errors that say where**: every error is one line naming the key path and the line it
//!   was written on (or the override variable it came from), with the fix where there is one.
//!   Unknown keys are errors when the target type says `#[serde(deny_unknown_fields)]`.
//! - **No secrets in errors**: a value substituted from the environment is shown as its
//!   `${VAR}` reference, never as itself.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     url: String,
//!     #[serde(default, with = "stream_config::duration::option")]
//!     timeout: Option<std::time::Duration>,
//! }
//!
//! let loader = stream_config::Loader::new()
//!     .env_prefix("APP")
//!     .vars([("PW", "hunter2"), ("APP__TIMEOUT", "5s")]);
//! let config = loader.load_str::<Config>("url: postgres://app:${PW}@db/app\n").unwrap();
//! assert_eq!(config.value.url, "postgres://app:hunter2@db/app");
//! assert_eq!(config.value.timeout, Some(std::time::Duration::from_secs(5)));
//!
//! let errors = loader.load_str::<Config>("url: x\ntimeuot: 5s\n").unwrap_err();
//! assert_eq!(errors.to_string(), "timeuot: unknown key; did you mean `timeout`? (line 2)");
//! ```
//!
//! After loading, checks of meaning (a URL that must parse, a name that must exist) report
//! their errors the same way through [`Loaded::invalid`].

pub mod duration;
mod env;
mod error;
mod origin;
mod path;
mod tree;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use path::{KeyPath, Location, Part};

/// Loads config files (see the crate docs for what it does).
#[derive(Debug, Clone, Default)]
pub struct Loader {
    env_prefix: Option<String>,
    vars: Option<env::Vars>,
}

impl Loader {
    /// A loader resolving `${VAR}` against the process environment, without overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `PREFIX__A__B=value` environment overrides.
    #[must_use]
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// Uses these variables instead of the process environment (for `${VAR}` and overrides).
    #[must_use]
    pub fn vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.vars = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), Some(v.into())))
                .collect(),
        );
        self
    }

    /// Reads and loads the file at `path`.
    pub fn load_file<T: serde::de::DeserializeOwned>(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<Loaded<T>, ConfigErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.load_str(&text)
    }

    /// Loads a document held in memory.
    pub fn load_str<T: serde::de::DeserializeOwned>(
        &self,
        text: &str,
    ) -> Result<Loaded<T>, ConfigErrors> {
        let mut root = tree::parse(text)?;
        let process;
        let vars = match &self.vars {
            Some(vars) => vars,
            None => {
                process = env::process_vars();
                &process
            }
        };
        let mut errors = match &self.env_prefix {
            Some(prefix) => env::apply_overrides(&mut root, prefix, vars),
            None => Vec::new(),
        };
        let (value, origins) = match env::resolve(&root, vars) {
            Ok(resolved) => match ConfigErrors::new(errors) {
                Some(errors) => return Err(errors),
                None => resolved,
            },
            Err(more) => {
                errors.extend(more);
                return Err(ConfigErrors::several(errors));
            }
        };
        let value =
            serde_path_to_error::deserialize(value).map_err(|e| error::from_serde(e, &origins))?;
        Ok(Loaded { value, origins })
    }
}

/// A loaded config, and where each of its values came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The config.
    pub value: T,
    origins: origin::Origins,
}

impl<T> Loaded<T> {
    /// Where `key` was written (its line or override variable), or its nearest written
    /// ancestor's, for a key that is absent.
    pub fn location(&self, key: &KeyPath) -> Location {
        self.origins.locate(key)
    }

    /// An error about `key`, for checks made after loading: located like the loader's own,
    /// and with every environment value in `reason` replaced by its `${VAR}` reference.
    pub fn invalid(&self, key: KeyPath, reason: impl AsRef<str>) -> ConfigError {
        ConfigError::Invalid {
            reason: self.origins.scrub(&key, reason.as_ref()),
            at: self.origins.locate(&key),
            key,
        }
    }

    /// The same origins around another value (a validated form of the config).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Loaded<U> {
        Loaded {
            value: f(self.value),
            origins: self.origins,
        }
    }
}

#[cfg(test)]
mod tests;
