//! The embedded [`TaskLog`]: one sled tree, every transition one transaction.
//!
//! Keys in the `queue` tree (topic is `jobs` or `deliveries`):
//!
//! | key                                | value                                  |
//! |------------------------------------|----------------------------------------|
//! | `t` topic `\0` id                  | [`Task`] (postcard)                    |
//! | `r` topic `\0` due-ms (u64 BE) id  | empty: the due index                   |
//! | `o` topic `\0` order key           | ids waiting under that key, head first |
//! | `c` topic `\0` coalesce key        | id of the task a burst merges into     |
//!
//! A `Ready` or `Leased` task has exactly one due entry, except an ordered
//! task that is not the head of its order list: it has none until its turn.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{
    Attempt, Coalesced, Depth, Lease, NewTask, QueueError, Task, TaskLog, TaskState, Topic,
};

impl From<TransactionError<Infallible>> for QueueError {
    fn from(e: TransactionError<Infallible>) -> Self {
        match e {
            TransactionError::Storage(e) => QueueError::Sled(e),
            TransactionError::Abort(never) => match never {},
        }
    }
}

fn tag(topic: Topic) -> &'static [u8] {
    topic.name().as_bytes()
}

fn prefixed(kind: u8, topic: Topic, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + tag(topic).len() + rest.len());
    k.push(kind);
    k.extend_from_slice(tag(topic));
    k.push(0);
    k.extend_from_slice(rest);
    k
}

fn task_key(topic: Topic, id: &str) -> Vec<u8> {
    prefixed(b't', topic, id.as_bytes())
}

fn due_key(topic: Topic, due_ms: u64, id: &str) -> Vec<u8> {
    let mut k = prefixed(b'r', topic, &due_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn order_key(topic: Topic, key: &str) -> Vec<u8> {
    prefixed(b'o', topic, key.as_bytes())
}

fn coalesce_key(topic: Topic, key: &str) -> Vec<u8> {
    prefixed(b'c', topic, key.as_bytes())
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

type TxResult<T> = Result<T, ConflictableTransactionError<Infallible>>;

/// A state change, applied to the in-memory depth counters once the
/// transaction that made it has committed.
type Change = (Topic, Option<TaskState>, Option<TaskState>);

fn read(tx: &TransactionalTree, topic: Topic, id: &str) -> TxResult<Option<Task>> {
    Ok(tx
        .get(task_key(topic, id))?
        .and_then(|v| postcard::from_bytes(&v).ok()))
}

fn write(tx: &TransactionalTree, topic: Topic, task: &Task) -> TxResult<()> {
    tx.insert(task_key(topic, &task.id), encode(task))?;
    Ok(())
}

fn read_order(tx: &TransactionalTree, topic: Topic, key: &str) -> TxResult<Vec<String>> {
    Ok(tx
        .get(order_key(topic, key))?
        .and_then(|v| postcard::from_bytes(&v).ok())
        .unwrap_or_default())
}

fn write_order(tx: &TransactionalTree, topic: Topic, key: &str, ids: &[String]) -> TxResult<()> {
    if ids.is_empty() {
        tx.remove(order_key(topic, key))?;
    } else {
        tx.insert(order_key(topic, key), encode(&ids))?;
    }
    Ok(())
}

/// Makes `task` ready at `due_ms`: joins its order list (due only when it is
/// the head), else gets a due entry.
fn enqueue(tx: &TransactionalTree, topic: Topic, task: &mut Task, due_ms: u64) -> TxResult<()> {
    task.state = TaskState::Ready;
    task.due_ms = due_ms;
    let is_head = match &task.order_key {
        None => true,
        Some(key) => {
            let mut ids = read_order(tx, topic, key)?;
            if !ids.contains(&task.id) {
                ids.push(task.id.clone());
            }
            write_order(tx, topic, key, &ids)?;
            ids.first() == Some(&task.id)
        }
    };
    if is_head {
        tx.insert(due_key(topic, due_ms, &task.id), &[][..])?;
    }
    write(tx, topic, task)
}

/// Takes a finished task out of its order list and makes the next one due.
fn leave_order(tx: &TransactionalTree, topic: Topic, task: &Task, now_ms: u64) -> TxResult<()> {
    let Some(key) = &task.order_key else {
        return Ok(());
    };
    let mut ids = read_order(tx, topic, key)?;
    let was_head = ids.first() == Some(&task.id);
    ids.retain(|id| id != &task.id);
    write_order(tx, topic, key, &ids)?;
    if was_head
        && let Some(next) = ids.first()
        && let Some(mut next) = read(tx, topic, next)?
    {
        next.due_ms = next.due_ms.max(now_ms);
        tx.insert(due_key(topic, next.due_ms, &next.id), &[][..])?;
        write(tx, topic, &next)?;
    }
    Ok(())
}

fn publish_in(
    tx: &TransactionalTree,
    tasks: &[NewTask],
    now_ms: u64,
    rerun_finished: bool,
    changes: &mut Vec<Change>,
) -> TxResult<usize> {
    let mut added = 0;
    for t in tasks {
        let mut task = match read(tx, t.topic, &t.id)? {
            Some(old) if rerun_finished && old.state.is_finished() => {
                changes.push((t.topic, Some(old.state), Some(TaskState::Ready)));
                let mut history = old.history;
                history.push(Attempt {
                    at_ms: now_ms,
                    outcome: "queued again by a replayed job".into(),
                });
                Task {
                    payload: t.payload.clone(),
                    attempts: 0,
                    created_ms: now_ms,
                    history,
                    ..old
                }
            }
            Some(_) => continue,
            None => {
                changes.push((t.topic, None, Some(TaskState::Ready)));
                Task {
                    id: t.id.clone(),
                    state: TaskState::Ready,
                    attempts: 0,
                    due_ms: now_ms,
                    created_ms: now_ms,
                    payload: t.payload.clone(),
                    history: Vec::new(),
                    order_key: t.order_key.clone(),
                    coalesce_key: None,
                }
            }
        };
        enqueue(tx, t.topic, &mut task, now_ms)?;
        added += 1;
    }
    Ok(added)
}

/// How a leased task's attempt ends.
enum End<'a> {
    Done(&'a [NewTask]),
    Retry(u64),
    Defer(u64),
    Dead,
}

fn finish(
    tx: &TransactionalTree,
    lease: &Lease,
    end: &End<'_>,
    outcome: &str,
    now_ms: u64,
) -> TxResult<Vec<Change>> {
    let mut changes = Vec::new();
    let topic = lease.topic;
    let Some(mut task) = read(tx, topic, &lease.id)? else {
        return Ok(changes);
    };
    // A lease that expired and was taken again belongs to the newer attempt.
    if task.state != TaskState::Leased || task.attempts != lease.attempt {
        return Ok(changes);
    }
    tx.remove(due_key(topic, task.due_ms, &task.id))?;
    match end {
        End::Retry(delay) | End::Defer(delay) => {
            if let End::Defer(_) = end {
                task.attempts = task.attempts.saturating_sub(1);
            } else {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome: outcome.to_owned(),
                });
            }
            task.state = TaskState::Ready;
            task.due_ms = now_ms + delay;
            tx.insert(due_key(topic, task.due_ms, &task.id), &[][..])?;
            write(tx, topic, &task)?;
            changes.push((topic, Some(TaskState::Leased), Some(TaskState::Ready)));
        }
        End::Done(_) | End::Dead => {
            task.state = if let End::Dead = end {
                TaskState::Dead
            } else {
                TaskState::Done
            };
            task.history.push(Attempt {
                at_ms: now_ms,
                outcome: outcome.to_owned(),
            });
            write(tx, topic, &task)?;
            leave_order(tx, topic, &task, now_ms)?;
            if let Some(key) = &task.coalesce_key {
                let ck = coalesce_key(topic, key);
                if tx.get(&ck)?.is_some_and(|v| v == task.id.as_bytes()) {
                    tx.remove(ck)?;
                }
            }
            changes.push((topic, Some(TaskState::Leased), Some(task.state)));
            if let End::Done(follow_ups) = end {
                publish_in(tx, follow_ups, now_ms, true, &mut changes)?;
            }
        }
    }
    Ok(changes)
}

/// Live task counts by topic and state, rebuilt from the tree at open.
#[derive(Debug, Default)]
struct Counts([[AtomicI64; 4]; 2]);

impl Counts {
    fn slot(&self, topic: Topic, state: TaskState) -> &AtomicI64 {
        let t = Topic::ALL.iter().position(|x| *x == topic).unwrap_or(0);
        let s = TaskState::ALL.iter().position(|x| *x == state).unwrap_or(0);
        &self.0[t][s]
    }

    fn apply(&self, changes: &[Change]) {
        for (topic, from, to) in changes {
            if let Some(from) = from {
                self.slot(*topic, *from).fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(to) = to {
                self.slot(*topic, *to).fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The sled-backed [`TaskLog`].
#[derive(Clone)]
pub struct Queue {
    tree: sled::Tree,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens the queue in the store's database (counting its tasks once).
    pub fn open(store: &crate::EventStore) -> Result<Self, QueueError> {
        Self::open_db(store.db())
    }

    fn open_db(db: &sled::Db) -> Result<Self, QueueError> {
        let q = Self {
            tree: db.open_tree("queue")?,
            counts: Arc::default(),
        };
        for topic in Topic::ALL {
            for item in q.tree.scan_prefix(prefixed(b't', topic, b"")).values() {
                let v = item?;
                if let Ok(task) = postcard::from_bytes::<Task>(&v) {
                    q.counts.apply(&[(topic, None, Some(task.state))]);
                }
            }
        }
        Ok(q)
    }

    /// Every task of a topic (for inspection and tests).
    pub fn tasks(&self, topic: Topic) -> Result<Vec<Task>, QueueError> {
        self.list(topic, None, usize::MAX, &|_| true)
    }

    fn transact<T>(
        &self,
        f: impl Fn(&TransactionalTree) -> TxResult<(T, Vec<Change>)>,
    ) -> Result<T, QueueError> {
        let (out, changes) = self.tree.transaction(f)?;
        self.counts.apply(&changes);
        Ok(out)
    }

    fn end(
        &self,
        lease: &Lease,
        end: End<'_>,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.transact(|tx| Ok(((), finish(tx, lease, &end, outcome, now_ms)?)))
    }
}

impl TaskLog for Queue {
    fn publish(&self, tasks: &[NewTask], now_ms: u64) -> Result<usize, QueueError> {
        self.transact(|tx| {
            let mut changes = Vec::new();
            let n = publish_in(tx, tasks, now_ms, false, &mut changes)?;
            Ok((n, changes))
        })
    }

    fn coalesce(
        &self,
        new: &NewTask,
        key: &str,
        delay_ms: u64,
        now_ms: u64,
        merge: &(dyn Fn(&[u8]) -> Vec<u8> + Sync),
    ) -> Result<Coalesced, QueueError> {
        let topic = new.topic;
        self.transact(|tx| {
            let ck = coalesce_key(topic, key);
            if let Some(id) = tx.get(&ck)? {
                let id = String::from_utf8_lossy(&id).into_owned();
                if let Some(mut task) = read(tx, topic, &id)?
                    && task.state == TaskState::Ready
                {
                    let had_due = tx.remove(due_key(topic, task.due_ms, &id))?.is_some();
                    task.payload = merge(&task.payload);
                    task.due_ms = now_ms + delay_ms;
                    if had_due {
                        tx.insert(due_key(topic, task.due_ms, &id), &[][..])?;
                    }
                    write(tx, topic, &task)?;
                    return Ok((Coalesced::Merged(id), vec![]));
                }
            }
            if read(tx, topic, &new.id)?.is_some() {
                // Already published (a fan-out redone after a crash).
                return Ok((Coalesced::Published(new.id.clone()), vec![]));
            }
            let mut task = Task {
                id: new.id.clone(),
                state: TaskState::Ready,
                attempts: 0,
                due_ms: now_ms + delay_ms,
                created_ms: now_ms,
                payload: new.payload.clone(),
                history: Vec::new(),
                order_key: new.order_key.clone(),
                coalesce_key: Some(key.to_owned()),
            };
            enqueue(tx, topic, &mut task, now_ms + delay_ms)?;
            tx.insert(ck, new.id.as_bytes())?;
            Ok((
                Coalesced::Published(new.id.clone()),
                vec![(topic, None, Some(TaskState::Ready))],
            ))
        })
    }

    fn lease(
        &self,
        topic: Topic,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Lease>, QueueError> {
        let prefix = prefixed(b'r', topic, b"");
        let mut leases = Vec::new();
        for item in self.tree.scan_prefix(&prefix).keys() {
            if leases.len() >= max {
                break;
            }
            let k = item?;
            let Some((due, id)) = k[prefix.len()..].split_at_checked(8) else {
                continue;
            };
            let due = u64::from_be_bytes(due.try_into().unwrap_or([0xff; 8]));
            if due > now_ms {
                break;
            }
            let id = String::from_utf8_lossy(id).into_owned();
            // Another worker may have taken it between the scan and now: the
            // transaction re-checks that this exact due entry still exists.
            let taken = self.transact(|tx| {
                if tx.remove(k.clone())?.is_none() {
                    return Ok((None, vec![]));
                }
                let Some(mut task) = read(tx, topic, &id)? else {
                    return Ok((None, vec![]));
                };
                let from = task.state;
                task.state = TaskState::Leased;
                task.attempts += 1;
                task.due_ms = now_ms + lease_ms;
                tx.insert(due_key(topic, task.due_ms, &id), &[][..])?;
                write(tx, topic, &task)?;
                let lease = Lease {
                    topic,
                    id: id.clone(),
                    attempt: task.attempts,
                    created_ms: task.created_ms,
                    payload: task.payload,
                };
                Ok((
                    Some(lease),
                    vec![(topic, Some(from), Some(TaskState::Leased))],
                ))
            })?;
            leases.extend(taken);
        }
        Ok(leases)
    }

    fn ack(
        &self,
        lease: &Lease,
        outcome: &str,
        follow_ups: &[NewTask],
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.end(lease, End::Done(follow_ups), outcome, now_ms)
    }

    fn retry(
        &self,
        lease: &Lease,
        delay_ms: u64,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.end(lease, End::Retry(delay_ms), outcome, now_ms)
    }

    fn defer(&self, lease: &Lease, delay_ms: u64, now_ms: u64) -> Result<(), QueueError> {
        self.end(lease, End::Defer(delay_ms), "", now_ms)
    }

    fn dead_letter(&self, lease: &Lease, reason: &str, now_ms: u64) -> Result<(), QueueError> {
        self.end(lease, End::Dead, reason, now_ms)
    }

    fn replay(&self, topic: Topic, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        self.transact(|tx| {
            let Some(mut task) = read(tx, topic, id)? else {
                return Ok((false, vec![]));
            };
            if !task.state.is_finished() {
                return Ok((false, vec![]));
            }
            let from = task.state;
            task.attempts = 0;
            task.created_ms = now_ms;
            task.history.push(Attempt {
                at_ms: now_ms,
                outcome: format!("replayed (was {})", from.name()),
            });
            enqueue(tx, topic, &mut task, now_ms)?;
            Ok((true, vec![(topic, Some(from), Some(TaskState::Ready))]))
        })
    }

    fn get(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        match self.tree.get(task_key(topic, id))? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|_| QueueError::Corrupt(id.to_owned())),
        }
    }

    fn list(
        &self,
        topic: Topic,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, QueueError> {
        let prefix = prefixed(b't', topic, b"");
        let start = match after {
            Some(a) => {
                let mut k = task_key(topic, a);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let task: Task = postcard::from_bytes(&v)
                .map_err(|_| QueueError::Corrupt(String::from_utf8_lossy(&k).into_owned()))?;
            if keep(&task) {
                out.push(task);
            }
        }
        Ok(out)
    }

    fn with_prefix(&self, topic: Topic, prefix: &str) -> Result<Vec<Task>, QueueError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(task_key(topic, prefix)) {
            let (k, v) = item?;
            out.push(
                postcard::from_bytes(&v)
                    .map_err(|_| QueueError::Corrupt(String::from_utf8_lossy(&k).into_owned()))?,
            );
        }
        Ok(out)
    }

    fn purge_done(&self, topic: Topic, before: &str, limit: usize) -> Result<usize, QueueError> {
        let prefix = prefixed(b't', topic, b"");
        let end = task_key(topic, before);
        let mut purged = 0;
        for item in self.tree.range(prefix..end) {
            if purged >= limit {
                break;
            }
            let (k, v) = item?;
            let Ok(task) = postcard::from_bytes::<Task>(&v) else {
                continue;
            };
            if task.state != TaskState::Done {
                continue;
            }
            // Only if it is still done when removed.
            let removed = self
                .tree
                .compare_and_swap(&k, Some(v), None as Option<&[u8]>)?
                .is_ok();
            if removed {
                self.counts.apply(&[(topic, Some(TaskState::Done), None)]);
                purged += 1;
            }
        }
        Ok(purged)
    }

    fn recover(&self, now_ms: u64) -> Result<usize, QueueError> {
        let mut recovered = 0;
        for topic in Topic::ALL {
            for task in self.list(topic, None, usize::MAX, &|t| t.state == TaskState::Leased)? {
                self.transact(|tx| {
                    let Some(mut t) = read(tx, topic, &task.id)? else {
                        return Ok(((), vec![]));
                    };
                    if t.state != TaskState::Leased {
                        return Ok(((), vec![]));
                    }
                    tx.remove(due_key(topic, t.due_ms, &t.id))?;
                    t.state = TaskState::Ready;
                    t.due_ms = now_ms;
                    t.history.push(Attempt {
                        at_ms: now_ms,
                        outcome: "interrupted: the daemon stopped during this attempt".into(),
                    });
                    tx.insert(due_key(topic, now_ms, &t.id), &[][..])?;
                    write(tx, topic, &t)?;
                    Ok((
                        (),
                        vec![(topic, Some(TaskState::Leased), Some(TaskState::Ready))],
                    ))
                })?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    fn next_due(&self, topic: Topic) -> Result<Option<u64>, QueueError> {
        let prefix = prefixed(b'r', topic, b"");
        let Some(item) = self.tree.scan_prefix(&prefix).keys().next() else {
            return Ok(None);
        };
        let k = item?;
        Ok(k.get(prefix.len()..prefix.len() + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes))
    }

    fn depth(&self) -> Depth {
        let mut counts = Vec::new();
        for topic in Topic::ALL {
            for state in TaskState::ALL {
                let n = self
                    .counts
                    .slot(topic, state)
                    .load(Ordering::Relaxed)
                    .max(0) as u64;
                counts.push((topic, state, n));
            }
        }
        Depth { counts }
    }
}

/// Checks the queue tree's invariants without changing anything; returns
/// one line per problem found.
pub(crate) fn verify(db: &sled::Db) -> Result<Vec<String>, QueueError> {
    let tree = db.open_tree("queue")?;
    let mut problems = Vec::new();
    for topic in Topic::ALL {
        let t = topic.name();
        let mut tasks = std::collections::HashMap::new();
        for item in tree.scan_prefix(prefixed(b't', topic, b"")) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[2 + t.len()..]).into_owned();
            match postcard::from_bytes::<Task>(&v) {
                Ok(task) if task.id == id => {
                    tasks.insert(id, task);
                }
                Ok(task) => problems.push(format!(
                    "{t} task under key `{id}` says its id is `{}`",
                    task.id
                )),
                Err(e) => problems.push(format!("{t} task `{id}` does not decode: {e}")),
            }
        }
        let mut due_of: std::collections::HashMap<String, Vec<u64>> = Default::default();
        let prefix = prefixed(b'r', topic, b"");
        for item in tree.scan_prefix(&prefix).keys() {
            let k = item?;
            let Some((due, id)) = k[prefix.len()..].split_at_checked(8) else {
                problems.push(format!("{t} due entry is too short"));
                continue;
            };
            let due = u64::from_be_bytes(due.try_into().unwrap_or([0; 8]));
            due_of
                .entry(String::from_utf8_lossy(id).into_owned())
                .or_default()
                .push(due);
        }
        let mut heads = std::collections::HashSet::new();
        let mut ordered = std::collections::HashSet::new();
        let prefix = prefixed(b'o', topic, b"");
        for item in tree.scan_prefix(&prefix) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let Ok(ids) = postcard::from_bytes::<Vec<String>>(&v) else {
                problems.push(format!("{t} order list `{key}` does not decode"));
                continue;
            };
            for (i, id) in ids.iter().enumerate() {
                match tasks.get(id) {
                    None => {
                        problems.push(format!("{t} order list `{key}` names missing task `{id}`"))
                    }
                    Some(task) if task.state.is_finished() => problems.push(format!(
                        "{t} order list `{key}` still holds finished task `{id}`"
                    )),
                    Some(_) => {}
                }
                if i == 0 {
                    heads.insert(id.clone());
                }
                ordered.insert(id.clone());
            }
        }
        for (id, task) in &tasks {
            let dues = due_of.remove(id).unwrap_or_default();
            let waiting_its_turn =
                ordered.contains(id) && !heads.contains(id) && task.state == TaskState::Ready;
            match task.state {
                TaskState::Ready | TaskState::Leased if waiting_its_turn => {
                    if !dues.is_empty() {
                        problems.push(format!(
                            "{t} task `{id}` is due before its turn in its order list"
                        ));
                    }
                }
                TaskState::Ready | TaskState::Leased => {
                    if dues != [task.due_ms] {
                        problems.push(format!(
                            "{t} task `{id}` is {} due at {} but has due entries {dues:?}: it would never run or run twice",
                            task.state.name(),
                            task.due_ms
                        ));
                    }
                    if task.order_key.is_some() && !ordered.contains(id) {
                        problems.push(format!(
                            "{t} ordered task `{id}` is missing from its order list"
                        ));
                    }
                }
                TaskState::Done | TaskState::Dead => {
                    if !dues.is_empty() {
                        problems.push(format!(
                            "{t} task `{id}` is {} but still due",
                            task.state.name()
                        ));
                    }
                }
            }
        }
        for id in due_of.keys() {
            problems.push(format!("{t} due entry for missing task `{id}`"));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, sled::Db, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let q = Queue::open_db(&db).unwrap();
        (dir, db, q)
    }

    fn job(id: &str) -> NewTask {
        NewTask::new(Topic::Jobs, id, id.as_bytes().to_vec())
    }

    fn ordered(id: &str, key: &str) -> NewTask {
        NewTask {
            order_key: Some(key.into()),
            ..job(id)
        }
    }

    fn ids(leases: &[Lease]) -> Vec<&str> {
        leases.iter().map(|l| l.id.as_str()).collect()
    }

    #[test]
    fn publishing_the_same_id_twice_queues_it_once() {
        let (_d, _db, q) = queue();
        assert_eq!(q.publish(&[job("a"), job("a")], 10).unwrap(), 1);
        assert_eq!(q.publish(&[job("a")], 10).unwrap(), 0);
        assert_eq!(q.lease(Topic::Jobs, 10, 1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_leased_task_is_invisible_until_its_lease_expires() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let first = q.lease(Topic::Jobs, 0, 1000, 10).unwrap();
        assert_eq!(first[0].attempt, 1);
        assert!(q.lease(Topic::Jobs, 999, 1000, 10).unwrap().is_empty());
        let again = q.lease(Topic::Jobs, 1000, 1000, 10).unwrap();
        assert_eq!(
            again[0].attempt, 2,
            "an expired lease is re-run, never lost"
        );
    }

    #[test]
    fn an_acked_task_never_comes_back_and_its_follow_ups_are_queued() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        let delivery = NewTask::new(Topic::Deliveries, "a.0", vec![]);
        q.ack(&lease, "delivered 1", &[delivery], 5).unwrap();
        assert!(q.lease(Topic::Jobs, 10_000, 1000, 10).unwrap().is_empty());
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Done
        );
        assert_eq!(q.lease(Topic::Deliveries, 5, 1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_retried_task_comes_due_after_its_delay_with_its_history() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        q.retry(&lease, 500, "destination answered 503", 100)
            .unwrap();
        assert!(q.lease(Topic::Jobs, 599, 1000, 10).unwrap().is_empty());
        assert_eq!(q.lease(Topic::Jobs, 600, 1000, 10).unwrap().len(), 1);
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.history[0].outcome, "destination answered 503");
    }

    #[test]
    fn a_deferred_task_comes_back_without_spending_an_attempt() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        q.defer(&lease, 50, 0).unwrap();
        let again = q.lease(Topic::Jobs, 50, 1000, 10).unwrap().remove(0);
        assert_eq!(again.attempt, 1);
        assert!(q.get(Topic::Jobs, "a").unwrap().unwrap().history.is_empty());
    }

    #[test]
    fn a_dead_lettered_task_keeps_its_reason_and_replay_runs_it_again() {
        let (_d, db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        q.dead_letter(&lease, "plugin trapped", 1).unwrap();
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.state, TaskState::Dead);
        assert_eq!(task.history.last().unwrap().outcome, "plugin trapped");
        assert!(
            q.lease(Topic::Jobs, u64::MAX / 2, 1000, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Dead), 1);

        assert!(q.replay(Topic::Jobs, "a", 2).unwrap());
        assert!(
            !q.replay(Topic::Jobs, "a", 2).unwrap(),
            "only finished tasks replay"
        );
        let again = q.lease(Topic::Jobs, 2, 1000, 10).unwrap().remove(0);
        assert_eq!(again.attempt, 1, "a replay starts a fresh attempt count");
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Dead), 0);
        assert!(verify(&db).unwrap().is_empty());
    }

    #[test]
    fn a_replayed_job_queues_its_finished_follow_ups_again() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let d = NewTask::new(Topic::Deliveries, "a.0", vec![]);
        let l = q.lease(Topic::Jobs, 0, 1000, 1).unwrap().remove(0);
        q.ack(&l, "ok", std::slice::from_ref(&d), 0).unwrap();
        let dl = q.lease(Topic::Deliveries, 0, 1000, 1).unwrap().remove(0);
        q.ack(&dl, "delivered", &[], 0).unwrap();
        q.replay(Topic::Jobs, "a", 1).unwrap();
        let l = q.lease(Topic::Jobs, 1, 1000, 1).unwrap().remove(0);
        q.ack(&l, "ok", &[d], 1).unwrap();
        assert_eq!(
            ids(&q.lease(Topic::Deliveries, 1, 1000, 1).unwrap()),
            ["a.0"]
        );
    }

    #[test]
    fn a_stale_lease_cannot_finish_a_task_that_was_leased_again() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let old = q.lease(Topic::Jobs, 0, 10, 10).unwrap().remove(0);
        let new = q.lease(Topic::Jobs, 10, 1000, 10).unwrap().remove(0);
        q.ack(&old, "late", &[], 20).unwrap();
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Leased
        );
        q.ack(&new, "done", &[], 30).unwrap();
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Done
        );
    }

    #[test]
    fn recovery_after_a_restart_makes_leased_tasks_due_at_once() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        q.lease(Topic::Jobs, 0, 60_000, 10).unwrap();
        assert_eq!(q.recover(5).unwrap(), 1);
        assert_eq!(q.lease(Topic::Jobs, 5, 1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn ordered_tasks_run_one_at_a_time_per_key_without_blocking_other_keys() {
        let (_d, db, q) = queue();
        q.publish(
            &[ordered("1", "x"), ordered("2", "x"), ordered("3", "y")],
            0,
        )
        .unwrap();
        let first = q.lease(Topic::Jobs, 0, 1000, 10).unwrap();
        assert_eq!(
            ids(&first),
            ["1", "3"],
            "only the head of x, and y alongside"
        );
        assert!(verify(&db).unwrap().is_empty(), "{:?}", verify(&db));
        // A retry keeps its place: 2 still waits.
        q.retry(&first[0], 10, "503", 0).unwrap();
        assert!(q.lease(Topic::Jobs, 5, 1000, 10).unwrap().is_empty());
        let again = q.lease(Topic::Jobs, 10, 1000, 10).unwrap().remove(0);
        assert_eq!(again.id, "1");
        q.dead_letter(&again, "gave up", 11).unwrap();
        assert_eq!(
            ids(&q.lease(Topic::Jobs, 11, 1000, 10).unwrap()),
            ["2"],
            "a dead head lets the next run"
        );
        assert!(verify(&db).unwrap().is_empty(), "{:?}", verify(&db));
    }

    #[test]
    fn a_burst_coalesces_into_one_waiting_task_until_it_is_leased() {
        let (_d, db, q) = queue();
        let count = |p: &[u8]| vec![p.first().copied().unwrap_or(0) + 1];
        let t = |id: &str| NewTask::new(Topic::Jobs, id, vec![1]);
        assert_eq!(
            q.coalesce(&t("a"), "k", 100, 0, &count).unwrap(),
            Coalesced::Published("a".into())
        );
        assert_eq!(
            q.coalesce(&t("b"), "k", 100, 50, &count).unwrap(),
            Coalesced::Merged("a".into())
        );
        assert!(
            q.lease(Topic::Jobs, 120, 1000, 10).unwrap().is_empty(),
            "the window restarted at 50"
        );
        let l = q.lease(Topic::Jobs, 150, 1000, 10).unwrap().remove(0);
        assert_eq!((l.id.as_str(), l.payload.as_slice()), ("a", &[2u8][..]));
        // Leased: the next event starts a new burst.
        assert_eq!(
            q.coalesce(&t("c"), "k", 100, 160, &count).unwrap(),
            Coalesced::Published("c".into())
        );
        q.ack(&l, "ok", &[], 170).unwrap();
        assert!(verify(&db).unwrap().is_empty(), "{:?}", verify(&db));
    }

    #[test]
    fn verify_reports_a_waiting_task_that_would_never_run() {
        let (_d, db, q) = queue();
        q.publish(&[job("a")], 7).unwrap();
        assert!(verify(&db).unwrap().is_empty());
        db.open_tree("queue")
            .unwrap()
            .remove(due_key(Topic::Jobs, 7, "a"))
            .unwrap();
        let problems = verify(&db).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("never run"), "{problems:?}");
    }

    #[test]
    fn done_tasks_before_a_cut_off_are_purged_and_others_kept() {
        let (_d, _db, q) = queue();
        q.publish(&[job("a1"), job("a2"), job("b1")], 0).unwrap();
        for l in q.lease(Topic::Jobs, 0, 1000, 2).unwrap() {
            q.ack(&l, "ok", &[], 0).unwrap();
        }
        // a1 and a2 done, b1 ready.
        assert_eq!(q.purge_done(Topic::Jobs, "b", 100).unwrap(), 2);
        assert_eq!(
            q.purge_done(Topic::Jobs, "z", 100).unwrap(),
            0,
            "ready work is never purged"
        );
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Done), 0);
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Ready), 1);
    }
}
