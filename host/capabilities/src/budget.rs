//! The host memory a plugin may make the daemon hold: header maps, request
//! bodies being buffered, responses and their connections. Without a bound
//! a plugin limited to 32 MiB of its own could make the host hold gigabytes
//! (thousands of header maps, dozens of 10 MiB bodies at once).
//!
//! One [`HostBudget`] per plugin instance, sized from the plugin's limits
//! ([`fieldhook_policy::sandbox::Sandbox::host_budget_bytes`]). Whatever
//! the host keeps for the plugin takes a [`Charge`] first; a charge that
//! does not fit is refused with [`OverBudget`], which names the budget and
//! how to raise it, and the host does not allocate. A charge gives its bytes
//! back when dropped, so what a finished request or a dropped header map
//! held is available again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A plugin instance's host memory budget; clones share it.
#[derive(Debug, Clone)]
pub struct HostBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: usize,
    held: AtomicUsize,
}

/// Bytes held against a [`HostBudget`] until dropped.
#[derive(Debug)]
pub struct Charge {
    budget: HostBudget,
    bytes: usize,
}

/// A charge that did not fit: nothing was allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "host memory budget exceeded: {what} needs {asked} more bytes while the plugin's \
     requests, responses and header maps hold {held} of {limit} bytes ({limit_mib} MiB, \
     the plugin's [limits] memory_mb); raise memory_mb in [limits] of plugin.toml (the \
     operator's ceiling is [sandbox] max_memory_mb), or hold less at once (drop header \
     maps and responses when done, send large bodies one at a time)",
    limit_mib = limit / (1024 * 1024)
)]
pub struct OverBudget {
    /// What asked for the memory.
    pub what: &'static str,
    /// Bytes asked for.
    pub asked: usize,
    /// Bytes held when it asked.
    pub held: usize,
    /// The budget.
    pub limit: usize,
}

impl HostBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Inner {
            limit,
            held: AtomicUsize::new(0),
        }))
    }

    /// Takes `bytes` for `what`, or refuses when they do not fit.
    pub fn charge(&self, bytes: usize, what: &'static str) -> Result<Charge, OverBudget> {
        self.take(bytes, what)?;
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// An empty charge, to grow later.
    pub fn empty(&self) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::Relaxed)
    }

    /// The budget, bytes.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    fn take(&self, bytes: usize, what: &'static str) -> Result<(), OverBudget> {
        let limit = self.0.limit;
        self.0
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|n| *n <= limit)
            })
            .map(drop)
            .map_err(|held| OverBudget {
                what,
                asked: bytes,
                held,
                limit,
            })
    }

    fn give_back(&self, bytes: usize) {
        let _ = self
            .0
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }
}

impl Charge {
    /// Bytes held by this charge.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `more` bytes too, or refuses (keeping what it held).
    pub fn grow(&mut self, more: usize, what: &'static str) -> Result<(), OverBudget> {
        self.budget.take(more, what)?;
        self.bytes = self.bytes.saturating_add(more);
        Ok(())
    }

    /// Holds exactly `bytes`: gives back the difference when smaller,
    /// asks for it when larger.
    pub fn resize(&mut self, bytes: usize, what: &'static str) -> Result<(), OverBudget> {
        if bytes >= self.bytes {
            self.grow(bytes - self.bytes, what)
        } else {
            self.shrink_to(bytes);
            Ok(())
        }
    }

    /// Holds at most `bytes`, giving back the rest.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Takes over what `other` held (one charge for both).
    pub fn absorb(&mut self, mut other: Charge) {
        self.bytes = self.bytes.saturating_add(std::mem::take(&mut other.bytes));
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_inside_the_budget_and_a_charge_that_does_not_is_refused_naming_it() {
        let budget = HostBudget::new(1000);
        let a = budget.charge(600, "a header map").unwrap();
        let e = budget.charge(500, "a request body").unwrap_err();
        assert_eq!(
            e,
            OverBudget {
                what: "a request body",
                asked: 500,
                held: 600,
                limit: 1000
            }
        );
        let message = e.to_string();
        assert!(message.contains("host memory budget"), "{message}");
        assert!(message.contains("[limits] memory_mb"), "{message}");
        assert!(message.contains("[sandbox] max_memory_mb"), "{message}");
        assert_eq!(budget.held(), 600);
        drop(a);
        assert_eq!(budget.held(), 0);
        assert!(budget.charge(1000, "a request body").is_ok());
    }

    #[test]
    fn a_charge_grows_and_shrinks_and_gives_everything_back_when_dropped() {
        let budget = HostBudget::new(100);
        let mut c = budget.empty();
        c.grow(60, "x").unwrap();
        assert!(c.grow(41, "x").is_err());
        assert_eq!(c.bytes(), 60);
        c.resize(10, "x").unwrap();
        assert_eq!(budget.held(), 10);
        let other = budget.charge(30, "y").unwrap();
        c.absorb(other);
        assert_eq!((c.bytes(), budget.held()), (40, 40));
        drop(c);
        assert_eq!(budget.held(), 0);
    }
}
