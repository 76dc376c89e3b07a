//! Process-wide memory settings.

/// Turns off transparent huge pages for this process.
///
/// The store's page cache grows with every event, so the heap keeps taking
/// fresh memory. With huge pages the first touch of each new 2 MiB page
/// makes the kernel zero all of it at once, on whichever thread touched it:
/// the store's committer, which every waiting request depends on, lost
/// 3-10 ms at a time that way (89% of the slowest groups' time in
/// `clear_page_erms`). With 4 KiB pages the same zeroing is spread thinly.
/// The allocator asks for huge pages itself (`madvise`), so the system's
/// `madvise` THP mode does not prevent it; this does.
#[allow(unsafe_code)] // one prctl; see the SAFETY note
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and
        // changes nothing but this process's page-fault policy.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)] // reads the flag back with prctl
mod tests {
    #[test]
    fn huge_pages_are_off_afterwards() {
        super::disable_transparent_huge_pages().unwrap();
        // SAFETY: integer arguments only; reads the flag back.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
