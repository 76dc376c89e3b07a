//! A durable work queue in sled, shaped like a log with leases.
//!
//! Work items ("tasks") live under a topic (`jobs`, `deliveries`). A worker
//! *leases* due tasks: the lease moves the task's due time to the lease's
//! expiry, so a worker that dies (or a daemon killed with `kill -9`) simply
//! lets the task come due again. A worker then *acks* (done), *retries* after
//! a delay, or *dead-letters* it with a reason. Every transition is one sled
//! transaction; the task keeps its attempt history.
//!
//! Keys in the `queue` tree:
//!
//! | key                                      | value               |
//! |------------------------------------------|---------------------|
//! | `t` topic `\0` id                        | [`Task`] (postcard) |
//! | `r` topic `\0` due-ms (u64 BE) id        | empty (due index)   |

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// sled failed.
    #[error("queue store: {0}")]
    Sled(#[from] sled::Error),
    /// A task record could not be decoded.
    #[error("queue record `{0}` is corrupt")]
    Corrupt(String),
}

impl From<TransactionError<Infallible>> for QueueError {
    fn from(e: TransactionError<Infallible>) -> Self {
        match e {
            TransactionError::Storage(e) => QueueError::Sled(e),
            TransactionError::Abort(never) => match never {},
        }
    }
}

/// A queue topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// An event to run through one plugin.
    Jobs,
    /// An outbound request to deliver.
    Deliveries,
}

impl Topic {
    fn tag(self) -> &'static [u8] {
        match self {
            Topic::Jobs => b"jobs",
            Topic::Deliveries => b"deliveries",
        }
    }

    /// Name used in logs and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Jobs => "jobs",
            Topic::Deliveries => "deliveries",
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its due time.
    Ready,
    /// Held by a worker until the lease expires.
    Leased,
    /// Finished.
    Done,
    /// Gave up; see the history for why.
    Dead,
}

/// One attempt's outcome, kept with the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the attempt ended, Unix ms.
    pub at_ms: u64,
    /// What happened.
    pub outcome: String,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique within its topic; publishing the same id twice is a no-op.
    pub id: String,
    /// Current state.
    pub state: TaskState,
    /// Leases taken so far.
    pub attempts: u32,
    /// When it is due next (or when its lease expires), Unix ms.
    pub due_ms: u64,
    /// When it was published, Unix ms.
    pub created_ms: u64,
    /// Topic-specific payload.
    pub payload: Vec<u8>,
    /// Outcome of every finished attempt, oldest first.
    pub history: Vec<Attempt>,
}

/// A task held by a worker.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Topic of the task.
    pub topic: Topic,
    /// Task id.
    pub id: String,
    /// 1 on the first lease, then 2, 3, ...
    pub attempt: u32,
    /// Topic-specific payload.
    pub payload: Vec<u8>,
}

/// A task to publish.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Topic.
    pub topic: Topic,
    /// Id, unique within the topic.
    pub id: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// The sled-backed queue.
#[derive(Clone)]
pub struct Queue {
    tree: sled::Tree,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

fn task_key(topic: Topic, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + topic.tag().len() + id.len());
    k.push(b't');
    k.extend_from_slice(topic.tag());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn due_prefix(topic: Topic) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + topic.tag().len());
    k.push(b'r');
    k.extend_from_slice(topic.tag());
    k.push(0);
    k
}

fn due_key(topic: Topic, due_ms: u64, id: &str) -> Vec<u8> {
    let mut k = due_prefix(topic);
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode(task: &Task) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    postcard::to_stdvec(task).unwrap_or_default()
}

type TxResult<T> = Result<T, ConflictableTransactionError<Infallible>>;

fn read(tx: &TransactionalTree, topic: Topic, id: &str) -> TxResult<Option<Task>> {
    Ok(tx
        .get(task_key(topic, id))?
        .and_then(|v| postcard::from_bytes(&v).ok()))
}

fn write(tx: &TransactionalTree, topic: Topic, task: &Task) -> Result<(), UnabortableTransactionError> {
    tx.insert(task_key(topic, &task.id), encode(task))?;
    Ok(())
}

impl Queue {
    /// Opens the queue in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, QueueError> {
        Ok(Self {
            tree: db.open_tree("queue")?,
        })
    }

    /// Publishes tasks due at `now_ms`. A task whose id already exists in
    /// its topic is left as it is (publishing is idempotent). Returns how
    /// many were new.
    pub fn publish(&self, tasks: &[NewTask], now_ms: u64) -> Result<usize, QueueError> {
        Ok(self
            .tree
            .transaction(|tx| publish_in(tx, tasks, now_ms))?)
    }

    /// Leases up to `max` tasks of `topic` due at `now_ms`, for `lease_ms`.
    pub fn lease(
        &self,
        topic: Topic,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Lease>, QueueError> {
        let prefix = due_prefix(topic);
        let mut leases = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            if leases.len() >= max {
                break;
            }
            let (k, _) = item?;
            let rest = &k[prefix.len()..];
            let Some((due, id)) = rest.split_at_checked(8) else {
                continue;
            };
            let due = u64::from_be_bytes(due.try_into().unwrap_or([0xff; 8]));
            if due > now_ms {
                break;
            }
            let id = String::from_utf8_lossy(id).into_owned();
            // Another worker may have taken it between the scan and now:
            // the transaction re-checks that this exact due entry still exists.
            let taken = self.tree.transaction(|tx| {
                if tx.get(&k)?.is_none() {
                    return Ok(None);
                }
                tx.remove(k.clone())?;
                let Some(mut task) = read(tx, topic, &id)? else {
                    return Ok(None);
                };
                task.state = TaskState::Leased;
                task.attempts += 1;
                task.due_ms = now_ms + lease_ms;
                tx.insert(due_key(topic, task.due_ms, &id), &[][..])?;
                write(tx, topic, &task)?;
                Ok(Some(Lease {
                    topic,
                    id: id.clone(),
                    attempt: task.attempts,
                    payload: task.payload.clone(),
                }))
            })?;
            leases.extend(taken);
        }
        Ok(leases)
    }

    /// Finishes a leased task, and publishes follow-up tasks in the same
    /// transaction (a job's deliveries are queued exactly when the job is done).
    pub fn ack(
        &self,
        lease: &Lease,
        outcome: &str,
        follow_ups: &[NewTask],
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.tree.transaction(|tx| {
            finish(tx, lease, TaskState::Done, outcome, None, now_ms)?;
            publish_in(tx, follow_ups, now_ms)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Releases a leased task to run again at `now_ms + delay_ms`.
    pub fn retry(
        &self,
        lease: &Lease,
        delay_ms: u64,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.tree.transaction(|tx| {
            finish(tx, lease, TaskState::Ready, outcome, Some(now_ms + delay_ms), now_ms)
        })?;
        Ok(())
    }

    /// Gives up on a leased task; it stays, dead, with its history.
    pub fn dead_letter(&self, lease: &Lease, reason: &str, now_ms: u64) -> Result<(), QueueError> {
        self.tree
            .transaction(|tx| finish(tx, lease, TaskState::Dead, reason, None, now_ms))?;
        Ok(())
    }

    /// One task.
    pub fn get(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        match self.tree.get(task_key(topic, id))? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|_| QueueError::Corrupt(id.to_owned())),
        }
    }

    /// Every task of a topic (for inspection and tests).
    pub fn tasks(&self, topic: Topic) -> Result<Vec<Task>, QueueError> {
        let mut prefix = vec![b't'];
        prefix.extend_from_slice(topic.tag());
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            let task = postcard::from_bytes(&v)
                .map_err(|_| QueueError::Corrupt(String::from_utf8_lossy(&k).into_owned()))?;
            out.push(task);
        }
        Ok(out)
    }

    /// After a restart nobody holds a lease: make leased tasks due now
    /// instead of waiting for their leases to expire.
    pub fn recover(&self, now_ms: u64) -> Result<usize, QueueError> {
        let mut recovered = 0;
        for topic in [Topic::Jobs, Topic::Deliveries] {
            for task in self.tasks(topic)? {
                if task.state != TaskState::Leased {
                    continue;
                }
                self.tree.transaction(|tx| {
                    let Some(mut t) = read(tx, topic, &task.id)? else {
                        return Ok(());
                    };
                    if t.state != TaskState::Leased {
                        return Ok(());
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
                    Ok(())
                })?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// The earliest due time of a topic, if any task is waiting.
    pub fn next_due(&self, topic: Topic) -> Result<Option<u64>, QueueError> {
        let prefix = due_prefix(topic);
        let Some(item) = self.tree.scan_prefix(&prefix).next() else {
            return Ok(None);
        };
        let (k, _) = item?;
        Ok(k.get(prefix.len()..prefix.len() + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes))
    }
}

fn publish_in(tx: &TransactionalTree, tasks: &[NewTask], now_ms: u64) -> TxResult<usize> {
    let mut added = 0;
    for t in tasks {
        let key = task_key(t.topic, &t.id);
        if tx.get(&key)?.is_some() {
            continue;
        }
        let task = Task {
            id: t.id.clone(),
            state: TaskState::Ready,
            attempts: 0,
            due_ms: now_ms,
            created_ms: now_ms,
            payload: t.payload.clone(),
            history: Vec::new(),
        };
        write(tx, t.topic, &task)?;
        tx.insert(due_key(t.topic, now_ms, &t.id), &[][..])?;
        added += 1;
    }
    Ok(added)
}

/// Ends the current attempt of a leased task.
fn finish(
    tx: &TransactionalTree,
    lease: &Lease,
    state: TaskState,
    outcome: &str,
    next_due: Option<u64>,
    now_ms: u64,
) -> TxResult<()> {
    let Some(mut task) = read(tx, lease.topic, &lease.id)? else {
        return Ok(());
    };
    // A lease that expired and was taken again belongs to the newer attempt.
    if task.state != TaskState::Leased || task.attempts != lease.attempt {
        return Ok(());
    }
    tx.remove(due_key(lease.topic, task.due_ms, &task.id))?;
    task.state = state;
    task.history.push(Attempt {
        at_ms: now_ms,
        outcome: outcome.to_owned(),
    });
    if let Some(due) = next_due {
        task.due_ms = due;
        tx.insert(due_key(lease.topic, due, &task.id), &[][..])?;
    }
    write(tx, lease.topic, &task)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, Queue::open(&db).unwrap())
    }

    fn job(id: &str) -> NewTask {
        NewTask {
            topic: Topic::Jobs,
            id: id.into(),
            payload: id.as_bytes().to_vec(),
        }
    }

    #[test]
    fn publishing_the_same_id_twice_queues_it_once() {
        let (_d, q) = queue();
        assert_eq!(q.publish(&[job("a"), job("a")], 10).unwrap(), 1);
        assert_eq!(q.publish(&[job("a")], 10).unwrap(), 0);
        assert_eq!(q.lease(Topic::Jobs, 10, 1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_leased_task_is_invisible_until_its_lease_expires() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let first = q.lease(Topic::Jobs, 0, 1000, 10).unwrap();
        assert_eq!(first[0].attempt, 1);
        assert!(q.lease(Topic::Jobs, 999, 1000, 10).unwrap().is_empty());
        let again = q.lease(Topic::Jobs, 1000, 1000, 10).unwrap();
        assert_eq!(again[0].attempt, 2, "an expired lease is re-run, never lost");
    }

    #[test]
    fn an_acked_task_never_comes_back_and_its_follow_ups_are_queued() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        let delivery = NewTask {
            topic: Topic::Deliveries,
            id: "a.0".into(),
            payload: vec![],
        };
        q.ack(&lease, "delivered 1", &[delivery], 5).unwrap();
        assert!(q.lease(Topic::Jobs, 10_000, 1000, 10).unwrap().is_empty());
        assert_eq!(q.get(Topic::Jobs, "a").unwrap().unwrap().state, TaskState::Done);
        assert_eq!(q.lease(Topic::Deliveries, 5, 1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_retried_task_comes_due_after_its_delay_with_its_history() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        q.retry(&lease, 500, "destination answered 503", 100).unwrap();
        assert!(q.lease(Topic::Jobs, 599, 1000, 10).unwrap().is_empty());
        let again = q.lease(Topic::Jobs, 600, 1000, 10).unwrap();
        assert_eq!(again.len(), 1);
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.history[0].outcome, "destination answered 503");
    }

    #[test]
    fn a_dead_lettered_task_keeps_its_reason_and_is_not_leased() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let lease = q.lease(Topic::Jobs, 0, 1000, 10).unwrap().remove(0);
        q.dead_letter(&lease, "plugin trapped", 1).unwrap();
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.state, TaskState::Dead);
        assert_eq!(task.history.last().unwrap().outcome, "plugin trapped");
        assert!(q.lease(Topic::Jobs, u64::MAX / 2, 1000, 10).unwrap().is_empty());
    }

    #[test]
    fn a_stale_lease_cannot_finish_a_task_that_was_leased_again() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let old = q.lease(Topic::Jobs, 0, 10, 10).unwrap().remove(0);
        let new = q.lease(Topic::Jobs, 10, 1000, 10).unwrap().remove(0);
        q.ack(&old, "late", &[], 20).unwrap();
        assert_eq!(q.get(Topic::Jobs, "a").unwrap().unwrap().state, TaskState::Leased);
        q.ack(&new, "done", &[], 30).unwrap();
        assert_eq!(q.get(Topic::Jobs, "a").unwrap().unwrap().state, TaskState::Done);
    }

    #[test]
    fn recovery_after_a_restart_makes_leased_tasks_due_at_once() {
        let (_d, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        q.lease(Topic::Jobs, 0, 60_000, 10).unwrap();
        assert_eq!(q.recover(5).unwrap(), 1);
        assert_eq!(q.lease(Topic::Jobs, 5, 1000, 10).unwrap().len(), 1);
    }
}
