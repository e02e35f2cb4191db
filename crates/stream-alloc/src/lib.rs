//! The memory allocator of ultimate-stream's binaries: mimalloc (events are allocated on the
//! reader's thread and freed on the writer's, which glibc's arenas make contend), set to give
//! freed memory back to the operating system promptly.
//!
//! mimalloc 3 keeps freed pages for a second before it returns them. A 64 MB row arrives as
//! 16 MB packets that are freed while the row's values are built: kept for that second, they
//! pushed `ustream tail`'s peak RSS for such a row from about 180 MB to 260–330 MB.
//! [`return_freed_memory_promptly`] shortens the delay to [`PURGE_DELAY_MS`]; an operator's
//! `MIMALLOC_PURGE_DELAY` still wins.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: stream_alloc::MiMalloc = stream_alloc::MiMalloc;
//!
//! fn main() {
//!     // Set(10), or FromEnvironment { .. } where the operator chose.
//!     let delay = stream_alloc::return_freed_memory_promptly();
//!     println!("mimalloc purge delay: {delay:?}");
//!     if let stream_alloc::PurgeDelay::FromEnvironment { warning: Some(warning), .. } = &delay {
//!         eprintln!("warning: {warning}");
//!     }
//! }
//! ```

pub use mimalloc::MiMalloc;

use std::ffi::{c_int, c_long};

/// How long freed memory stays mapped before it is returned, in milliseconds.
pub const PURGE_DELAY_MS: i64 = 10;

/// `mi_option_purge_delay` in the vendored mimalloc 3 (`mimalloc.h`); libmimalloc-sys names no
/// constant for it. Its default there, 1,000 ms, confirms the index before anything is set.
const PURGE_DELAY_OPTION: c_int = 15;
const DEFAULT_PURGE_DELAY_MS: i64 = 1_000;

/// The variables mimalloc reads the purge delay from (the second is its older name).
const ENVIRONMENT: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];

/// What [`return_freed_memory_promptly`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeDelay {
    /// The delay is now this many milliseconds.
    Set(i64),
    /// The environment sets it: left as mimalloc read it.
    FromEnvironment {
        /// The variable.
        variable: &'static str,
        /// The delay in effect (mimalloc keeps its default for a value it cannot read).
        effective_ms: i64,
        /// Why the variable's value is not what it seems, if it is not a whole number.
        warning: Option<String>,
    },
    /// The option did not hold mimalloc 3's default (another mimalloc version): left alone.
    UnknownAllocator {
        /// What the option held.
        found: i64,
    },
}

/// Makes mimalloc return freed memory after [`PURGE_DELAY_MS`] instead of a second, unless the
/// environment sets the delay. Call it first thing in `main`.
pub fn return_freed_memory_promptly() -> PurgeDelay {
    if let Some((variable, value)) = ENVIRONMENT
        .into_iter()
        .find_map(|name| std::env::var_os(name).map(|value| (name, value)))
    {
        let effective_ms = purge_delay();
        let value = value.to_string_lossy();
        let warning = value.trim().parse::<i64>().is_err().then(|| {
            let shown: String = value.chars().take(40).collect();
            format!(
                "{variable}=`{shown}` is not a whole number of milliseconds: freed memory is \
                 returned after {effective_ms} ms"
            )
        });
        return PurgeDelay::FromEnvironment {
            variable,
            effective_ms,
            warning,
        };
    }
    let found = purge_delay();
    if found == PURGE_DELAY_MS {
        return PurgeDelay::Set(PURGE_DELAY_MS);
    }
    if found != DEFAULT_PURGE_DELAY_MS {
        return PurgeDelay::UnknownAllocator { found };
    }
    let delay = c_long::try_from(PURGE_DELAY_MS).unwrap_or(c_long::MAX);
    // SAFETY: `mi_option_set` takes plain integers and checks the option's range itself; it
    // stores one aligned word in mimalloc's option table, which threads allocating meanwhile
    // read as the old or the new delay (either is valid). Called first in `main`.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, delay);
    }
    PurgeDelay::Set(PURGE_DELAY_MS)
}

/// The delay in effect, in milliseconds.
fn purge_delay() -> i64 {
    // SAFETY: plain integers, range checked by mimalloc; reads one word of its option table
    // (and the environment, the first time).
    #[allow(unsafe_code)]
    let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) };
    // `c_long` is 32 bits on some targets, where this is a widening.
    #[allow(clippy::useless_conversion)]
    i64::from(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_found_at_its_index_and_shortened() {
        if let Some(name) = ENVIRONMENT
            .into_iter()
            .find(|name| std::env::var_os(name).is_some())
        {
            let delay = return_freed_memory_promptly();
            assert!(
                matches!(delay, PurgeDelay::FromEnvironment { variable, .. } if variable == name),
                "{delay:?}"
            );
            return;
        }
        assert_eq!(
            purge_delay(),
            DEFAULT_PURGE_DELAY_MS,
            "mimalloc 3's default purge delay at option {PURGE_DELAY_OPTION}"
        );
        assert_eq!(
            return_freed_memory_promptly(),
            PurgeDelay::Set(PURGE_DELAY_MS)
        );
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
        assert_eq!(
            return_freed_memory_promptly(),
            PurgeDelay::Set(PURGE_DELAY_MS),
            "a second call finds it set"
        );
    }
}
