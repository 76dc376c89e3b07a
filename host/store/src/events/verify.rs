//! `fieldhook store verify`: checks the store's invariants without changing
//! anything, and says what is wrong.
//!
//! Checked: every event decodes and is stored under its own id; every inbox
//! and legacy dedupe entry points to a stored event (a dedupe entry may
//! outlive its event after retention, which is reported as a note, not a
//! problem); and
//! the queue's invariants: every task decodes under its own id and is
//! stored as finished or unfinished as its state says.

use std::path::Path;

use super::{CURSOR, DEDUPE, EVENT, INBOX, StoreError, decode_dedupe, key, record};

/// The outcome of a check.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Events stored.
    pub events: usize,
    /// Events waiting for fan-out (new ones and replays).
    pub inbox: usize,
    /// Dedupe entries in the legacy layout (newer stores keep their
    /// dedupe index in a file of its own).
    pub dedupe: usize,
    /// Broken invariants, one line each.
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong.
    pub notes: Vec<String>,
}

/// Checks the sled database in `db_dir` (the daemon's `data_dir/db`). The
/// daemon must be stopped: sled holds a lock on the directory.
pub fn verify(db_dir: &Path) -> Result<Report, StoreError> {
    crate::format::check(db_dir)?;
    if !db_dir.join("conf").exists() && !db_dir.join("db").exists() {
        return Err(StoreError::Check(format!(
            "{} is not a fieldhook store (expected data_dir/db)",
            db_dir.display()
        )));
    }
    let db = sled::Config::new().path(db_dir).open()?;
    let events = db.open_tree("events")?;
    let mut report = Report::default();
    let mut orphan_dedupe = 0;
    // The fan-out state lives with the task log (snapshot and journal);
    // stores from before it kept a cursor in the events tree.
    let (journaled, _) = crate::journal::read_dir(&db_dir.join("journal"))?;
    let mut cursor = journaled.snapshot.fanned_out.clone();
    let mut replays: std::collections::BTreeSet<String> =
        journaled.snapshot.replays.iter().cloned().collect();
    let mut unwritten = 0;
    for record in &journaled.records {
        match record {
            crate::journal::Record::FannedOut(through, done) => {
                if let Some(t) = through.as_ref().filter(|t| **t > cursor) {
                    cursor = t.clone();
                }
                for id in done {
                    replays.remove(id);
                }
            }
            crate::journal::Record::Requeue(id) => {
                replays.insert(id.clone());
            }
            crate::journal::Record::Event(id, _)
                if !events.contains_key(key(EVENT, id.as_bytes()))? =>
            {
                unwritten += 1;
            }
            _ => {}
        }
    }
    if cursor.is_empty()
        && let Some(legacy) = events.get(CURSOR)?
    {
        cursor = String::from_utf8_lossy(&legacy).into_owned();
    }
    if unwritten > 0 {
        report.notes.push(format!(
            "{unwritten} journaled events are not in sled yet; the daemon writes them when it next opens the store"
        ));
    }
    report.inbox += replays.len();
    for item in events.iter() {
        let (k, v) = item?;
        let printable = String::from_utf8_lossy(&k).into_owned();
        if *k == *CURSOR {
            continue;
        }
        match k.first() {
            Some(&EVENT) => {
                report.events += 1;
                let id = String::from_utf8_lossy(&k[1..]);
                if *id > *cursor {
                    report.inbox += 1;
                }
                match record::decode(&v) {
                    Ok(r) if r.id == id => {}
                    Ok(r) => report
                        .problems
                        .push(format!("event under `{id}` says its id is `{}`", r.id)),
                    Err(e) => report
                        .problems
                        .push(format!("event `{id}` does not decode: {e}")),
                }
            }
            Some(&INBOX) => {
                if *String::from_utf8_lossy(&k[1..]) <= *cursor
                    && !replays.contains(&*String::from_utf8_lossy(&k[1..]))
                {
                    report.inbox += 1;
                }
                if !events.contains_key(key(EVENT, &k[1..]))? {
                    report.problems.push(format!(
                        "inbox entry for missing event `{}`",
                        String::from_utf8_lossy(&k[1..])
                    ));
                }
            }
            Some(&DEDUPE) => {
                report.dedupe += 1;
                match decode_dedupe(&v) {
                    None => report
                        .problems
                        .push(format!("dedupe entry `{printable}` does not decode")),
                    Some((id, _)) if !events.contains_key(key(EVENT, id.as_bytes()))? => {
                        orphan_dedupe += 1
                    }
                    Some(_) => {}
                }
            }
            _ => report
                .problems
                .push(format!("unknown key `{printable}` in the events tree")),
        }
    }
    if orphan_dedupe > 0 {
        report.notes.push(format!(
            "{orphan_dedupe} dedupe entries point to events no longer stored (removed by retention as the daemon stopped); they expire with the dedupe window"
        ));
    }
    let queue_problems = crate::queue::verify(&db, &journaled, &mut report.notes)
        .map_err(|e| StoreError::Check(e.to_string()))?;
    report.problems.extend(queue_problems);
    Ok(report)
}
