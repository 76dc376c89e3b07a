//! The process's open-file limit, and how much of it webhook connections
//! may take.
//!
//! Every connection is a descriptor. With the usual soft limit of 1024 a
//! thousand half-sent requests made `accept` fail, and with it everything
//! else that opens a file: the admin listener, the store (sled's files,
//! the journal, the dedupe index) and deliveries' connections. So the
//! daemon raises its soft limit to the hard limit at start, and webhook
//! connections get only what is left after a reserve for the rest
//! ([`reserve`]).

use std::num::NonZeroUsize;

/// Descriptors the daemon holds whatever its load: standard streams, the
/// async runtime, sled's files (its blobs are opened as they are read),
/// the journal and its snapshots, the dedupe index, the compiled-code
/// cache, the plugins watcher, DNS lookups; with room to spare.
const BASE: u64 = 256;

/// Fewest webhook connections the daemon serves, however low the limit.
const MIN_CONNECTIONS: NonZeroUsize = match NonZeroUsize::new(16) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// The open-file limit after [`raise_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now in force.
    pub now: u64,
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit.
/// Only a privileged process could go past the hard limit, so this is the
/// most the daemon can have; raise the hard limit (systemd `LimitNOFILE=`,
/// `ulimit -Hn`, a container's `--ulimit nofile=`) for more.
#[cfg(unix)]
#[allow(unsafe_code)] // getrlimit and setrlimit; see the SAFETY notes
pub fn raise_limit() -> std::io::Result<Limit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that only the call reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Limit {
        before: descriptors(before),
        now: descriptors(limit.rlim_cur),
    })
}

/// A limit as a count: `rlim_t` is u64 on Linux and macOS (RLIM_INFINITY
/// reads as u64::MAX) but i64 on some BSDs, hence the cast.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn descriptors(limit: libc::rlim_t) -> u64 {
    limit as u64
}

/// Without `RLIMIT_NOFILE` there is nothing to raise.
#[cfg(not(unix))]
pub fn raise_limit() -> std::io::Result<Limit> {
    Ok(Limit {
        before: u64::MAX,
        now: u64::MAX,
    })
}

/// Descriptors kept from webhook connections: the daemon's own ([`BASE`]),
/// the admin listener's connections, and two per job and delivery worker
/// (the connection in use and one idle in the client's pool).
pub fn reserve(jobs: usize, deliveries: usize, admin_connections: usize) -> u64 {
    let workers = u64::try_from(jobs.saturating_add(deliveries)).unwrap_or(u64::MAX);
    BASE.saturating_add(u64::try_from(admin_connections).unwrap_or(u64::MAX))
        .saturating_add(workers.saturating_mul(2))
}

/// How many webhook connections to serve at once: `configured`, lowered to
/// what `limit` holds next to `reserved` (never below a handful, so the
/// daemon still takes webhooks under a tiny limit).
pub fn webhook_connections(configured: NonZeroUsize, limit: u64, reserved: u64) -> NonZeroUsize {
    let room = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    let room = NonZeroUsize::new(room).map_or(MIN_CONNECTIONS, |r| r.max(MIN_CONNECTIONS));
    configured.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let limit = raise_limit().unwrap();
        assert!(limit.now >= limit.before, "{limit:?}");
        #[cfg(unix)]
        #[allow(unsafe_code)] // reads the limit back
        {
            let mut read = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `read` is a valid, writable rlimit.
            assert_eq!(
                unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut read) },
                0
            );
            assert_eq!(read.rlim_cur, read.rlim_max);
            assert_eq!(descriptors(read.rlim_cur), limit.now);
        }
    }

    #[test]
    fn the_reserve_grows_with_the_workers_and_the_admin_listener() {
        assert_eq!(reserve(0, 0, 0), BASE);
        assert_eq!(reserve(64, 256, 64), BASE + 64 + 2 * 320);
        assert_eq!(reserve(usize::MAX, usize::MAX, usize::MAX), u64::MAX);
    }

    #[test]
    fn webhook_connections_get_what_the_limit_holds_beyond_the_reserve() {
        let connections = |configured, limit, reserved| {
            webhook_connections(NonZeroUsize::new(configured).unwrap(), limit, reserved).get()
        };
        assert_eq!(connections(1024, 1_048_576, 960), 1024, "room to spare");
        assert_eq!(connections(1024, u64::MAX, 960), 1024, "no limit at all");
        assert_eq!(connections(1024, 1024, 960), 64, "lowered to fit");
        assert_eq!(
            connections(1024, 512, 960),
            MIN_CONNECTIONS.get(),
            "a handful at least"
        );
        assert_eq!(connections(8, 512, 960), 8, "never raised");
    }
}
