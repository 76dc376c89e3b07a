//! What the host refused a plugin during one call (denied requests,
//! requests that could not be sent, memory over its budget), for the call's
//! outcome and the daemon's log.
//!
//! A plugin can make any number of refused requests in one call; logging
//! each (a denial's warning names the `[[http]]` block to add, several
//! lines) would let it write megabytes into the daemon's log. The first
//! few are logged in full, the rest counted, and [`Refusals::finish`]
//! logs one summary at the end of the call.

use std::sync::Mutex;

use fieldhook_core::text::one_line;

/// Refusals logged in full per call; the rest are counted.
pub const LOGGED_IN_FULL: u32 = 3;

/// Refusals kept for the call's outcome (the first explains it).
const KEPT: usize = 16;

/// Longest refusal written to the log, bytes.
const MAX_LOGGED_BYTES: usize = 4096;

/// One call's refusals.
#[derive(Debug, Default)]
pub struct Refusals {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    kept: Vec<String>,
    logged: u32,
    unlogged: u64,
}

impl Refusals {
    /// Records that the host refused something to `plugin`, and why: logged
    /// as a warning while fewer than [`LOGGED_IN_FULL`] were, counted after.
    pub fn record(&self, plugin: &str, reason: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.kept.len() < KEPT {
            s.kept.push(reason.to_owned());
        }
        if s.logged < LOGGED_IN_FULL {
            s.logged += 1;
            // One log line: the suggested [[http]] block's newlines are
            // escaped like anything else that names what a plugin sent.
            tracing::warn!(plugin, "{}", one_line(reason, MAX_LOGGED_BYTES));
        } else {
            s.unlogged = s.unlogged.saturating_add(1);
        }
    }

    /// The first refusal, which explains a failed call.
    pub fn first(&self) -> Option<String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.kept.first().cloned()
    }

    /// Refusals not logged one by one.
    pub fn unlogged(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unlogged
    }

    /// Ends the call: logs one summary of the refusals not logged one by
    /// one, if any.
    pub fn finish(&self, plugin: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.unlogged > 0 {
            tracing::warn!(
                plugin,
                refused = s.unlogged,
                "{} more refusals during this call, not logged one by one (the first {} were)",
                s.unlogged,
                s.logged
            );
            s.unlogged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusals_are_kept_for_the_outcome_and_the_rest_only_counted() {
        let r = Refusals::default();
        for i in 0..100_000 {
            r.record("p", &format!("request {i} denied"));
        }
        assert_eq!(r.first().as_deref(), Some("request 0 denied"));
        assert_eq!(r.unlogged(), 100_000 - u64::from(LOGGED_IN_FULL));
        r.finish("p");
        assert_eq!(r.unlogged(), 0);
        assert_eq!(r.state.lock().unwrap().kept.len(), KEPT);
    }
}
