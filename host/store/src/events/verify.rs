//! `fieldhook store verify`: checks the store's invariants without changing
//! anything, and says what is wrong.
//!
//! Checked: every event decodes and is stored under its own id; an event
//! that shares its message lies inside its message's span and the message
//! is stored (a dangling reference is a problem; a message no event refers
//! to is a note: a request cut short by a crash before it was answered);
//! every inbox and legacy dedupe entry points to a stored event (a dedupe
//! entry may outlive its event after retention, which is reported as a
//! note, not a problem); and the queue's invariants: every task decodes
//! under its own id and is stored as finished or unfinished as its state
//! says.

use std::collections::BTreeSet;
use std::path::Path;

use super::{CURSOR, DEDUPE, EVENT, INBOX, MESSAGE, StoreError, decode_dedupe, key, record};

/// The outcome of a check.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Events stored.
    pub events: usize,
    /// Events waiting for fan-out (new ones and replays).
    pub inbox: usize,
    /// Messages stored once for the several events split from each.
    pub messages: usize,
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
    // Messages some event refers to; events sort before messages in sled,
    // so a message is looked up only after every event that may refer to it.
    let mut referred: BTreeSet<String> = BTreeSet::new();
    // Messages the daemon writes back into sled when it next opens.
    let mut journaled_messages: BTreeSet<&str> = BTreeSet::new();
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
            crate::journal::Record::Event(id, record)
                if !events.contains_key(key(EVENT, id.as_bytes()))? =>
            {
                unwritten += 1;
                // Written back with the event when the daemon opens the store.
                if let Ok(Some(span)) = record::span_of(record) {
                    referred.insert(span.first);
                }
            }
            crate::journal::Record::Message(id, _) => {
                journaled_messages.insert(id);
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
    let mut unreferred = (0usize, 0usize);
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
                    Ok(record::Decoded::Whole(r)) if r.id == id => {}
                    Ok(record::Decoded::Whole(r)) => report
                        .problems
                        .push(format!("event under `{id}` says its id is `{}`", r.id)),
                    Ok(record::Decoded::Sharing(r)) if r.id() != id => report
                        .problems
                        .push(format!("event under `{id}` says its id is `{}`", r.id())),
                    Ok(record::Decoded::Sharing(r)) => {
                        let span = r.span();
                        if *id < *span.first || *id > *span.last {
                            report.problems.push(format!(
                                "event `{id}` says its message's events run from `{}` to `{}`, which leaves it out",
                                span.first, span.last
                            ));
                        }
                        if !events.contains_key(key(MESSAGE, span.first.as_bytes()))?
                            && !journaled_messages.contains(span.first.as_str())
                        {
                            report.problems.push(format!(
                                "event `{id}` refers to message `{}`, which is not stored: its headers and body are lost",
                                span.first
                            ));
                        }
                        referred.insert(span.first);
                    }
                    Err(e) => report
                        .problems
                        .push(format!("event `{id}` does not decode: {e}")),
                }
            }
            Some(&MESSAGE) => {
                report.messages += 1;
                let id = String::from_utf8_lossy(&k[1..]);
                if let Err(e) = record::decode_message(&v) {
                    report
                        .problems
                        .push(format!("message `{id}` does not decode: {e}"));
                }
                if !referred.contains(&*id) {
                    unreferred.0 += 1;
                    unreferred.1 = unreferred.1.saturating_add(v.len());
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
    if unreferred.0 > 0 {
        report.notes.push(format!(
            "{} messages ({} bytes) belong to no stored event: left by requests a crash cut short before they were answered (vendors retry those); they take disk space and nothing else",
            unreferred.0, unreferred.1
        ));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fieldhook_core::event::{Message, NewEvent, event_id};

    use super::super::record::{Encode as _, encode_message};
    use super::*;

    /// Writes `events` of one message straight into a sled store, as the
    /// daemon stores them, and the message when `with_message`.
    fn store_split(dir: &Path, events: usize, with_message: bool) -> Vec<String> {
        let db = sled::open(dir).unwrap();
        let tree = db.open_tree("events").unwrap();
        let message = Arc::new(Message {
            headers: vec![],
            body: b"{\"data\":[1,2,3]}".to_vec(),
        });
        // Increasing, as the store assigns them.
        let ulids: Vec<ulid::Ulid> = (0..events)
            .map(|i| ulid::Ulid::from_parts(1_700_000_000_000, i as u128))
            .collect();
        let (first, last) = (ulids[0], ulids[events - 1]);
        for &u in &ulids {
            let event = NewEvent {
                source: "st".into(),
                vendor: "servicetrade".into(),
                kind: "job.updated".into(),
                entity: None,
                occurred_at: None,
                dedupe_key: None,
                parsed: true,
                received_at_ms: 1,
                message: message.clone(),
            };
            let record = event.encode_sharing().number(u, first, last);
            tree.insert(key(EVENT, event_id(u).as_bytes()), record)
                .unwrap();
        }
        if with_message {
            tree.insert(
                key(MESSAGE, event_id(first).as_bytes()),
                encode_message(&message),
            )
            .unwrap();
        }
        db.flush().unwrap();
        ulids.into_iter().map(event_id).collect()
    }

    #[test]
    fn events_sharing_a_stored_message_verify_and_the_message_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        store_split(dir.path(), 3, true);
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.events, report.messages), (3, 1));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }

    #[test]
    fn an_event_whose_message_is_missing_is_a_dangling_reference() {
        let dir = tempfile::tempdir().unwrap();
        let ids = store_split(dir.path(), 2, false);
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        for (problem, id) in report.problems.iter().zip(&ids) {
            assert!(problem.contains(id.as_str()), "{problem}");
            assert!(problem.contains("not stored"), "{problem}");
        }
    }

    #[test]
    fn a_message_no_event_refers_to_is_a_note_not_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let ids = store_split(dir.path(), 2, true);
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("events").unwrap();
            for id in &ids {
                tree.remove(key(EVENT, id.as_bytes())).unwrap();
            }
            db.flush().unwrap();
        }
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.messages, 1);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("belong to no stored event")),
            "{:?}",
            report.notes
        );
    }
}
