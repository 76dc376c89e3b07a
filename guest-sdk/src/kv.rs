//! This plugin's key-value store, kept by the host across calls and
//! restarts: mapping tables, last-seen values, cursors.
//!
//! ```no_run
//! # fn f() -> Result<(), fieldhook_guest::PluginError> {
//! use fieldhook_guest::kv;
//! use std::time::Duration;
//!
//! kv::set("customer:42", b"qb-1337")?;
//! kv::set_with_ttl("seen:evt_1", b"", Duration::from_secs(3 * 24 * 3600))?;
//! let mapped = kv::get("customer:42")?;
//! kv::delete("customer:42")?;
//! # Ok(()) }
//! ```
//!
//! Keys are private to the plugin; sizes are capped by the operator (an
//! oversized value or a full store is a non-retryable [`KvError`]).
//! Outside WebAssembly the store is an in-memory map per test thread.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;

/// Why a store operation failed.
pub use crate::bindings::fieldhook::plugin::kv::KvError;

/// The value of `key`, or `None` when absent or expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::fieldhook::plugin::kv::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(crate::testing::kv_get(key));
}

/// Sets `key` with no expiry.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    set_inner(key, value, None)
}

/// Sets `key`, expiring after `ttl`.
pub fn set_with_ttl(key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
    set_inner(
        key,
        value,
        Some(ttl.as_millis().min(u128::from(u64::MAX)) as u64),
    )
}

fn set_inner(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::fieldhook::plugin::kv::set(key, value, ttl_ms);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = ttl_ms;
        crate::testing::kv_set(key, value);
        Ok(())
    }
}

/// Removes `key`; `true` when it existed.
pub fn delete(key: &str) -> Result<bool, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::fieldhook::plugin::kv::delete(key);
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(crate::testing::kv_delete(key));
}

/// The value of `key` as JSON.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, PluginError> {
    match get(key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            PluginError::fatal(format!("kv value `{key}` is not the expected JSON: {e}"))
        }),
        None => Ok(None),
    }
}

/// Sets `key` to `value` as JSON, expiring after `ttl` when given.
pub fn set_json<T: Serialize>(
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<(), PluginError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| PluginError::fatal(format!("cannot encode `{key}`: {e}")))?;
    match ttl {
        Some(ttl) => set_with_ttl(key, &bytes, ttl)?,
        None => set(key, &bytes)?,
    }
    Ok(())
}

impl From<KvError> for PluginError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Unavailable(m) => PluginError::retry(format!("key-value store: {m}")),
            KvError::TooLarge(m) | KvError::QuotaExceeded(m) => {
                PluginError::fatal(format!("key-value store: {m}"))
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_test_store() {
        crate::testing::clear_kv();
        set("a", b"1").unwrap();
        set_json("b", &vec![1, 2], None).unwrap();
        assert_eq!(get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(get_json::<Vec<u32>>("b").unwrap(), Some(vec![1, 2]));
        assert!(delete("a").unwrap());
        assert_eq!(get("a").unwrap(), None);
    }

    #[test]
    fn a_full_store_is_a_fatal_plugin_error_and_an_unavailable_one_retryable() {
        assert!(!PluginError::from(KvError::QuotaExceeded("full".into())).retryable);
        assert!(PluginError::from(KvError::Unavailable("down".into())).retryable);
    }
}
