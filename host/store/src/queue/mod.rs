//! The work queue: jobs and deliveries as leased tasks.
//!
//! The pipeline talks to a [`TaskLog`], an interface shaped like a log with
//! consumers (publish with an id, lease a batch, settle a batch of outcomes,
//! replay), so a NATS JetStream engine can stand in for the embedded one.
//! [`Queue`] is the embedded engine, in sled.
//!
//! A task's life: published `Ready` -> leased (`Leased`, invisible until the
//! lease expires, so a crashed worker's task simply comes due again) ->
//! settled: done (`Done`), retried (`Ready` after a delay) or dead-lettered
//! (`Dead`, with the reason and the whole attempt history). A `Done` or
//! `Dead` task can be replayed: it becomes `Ready` again with a fresh
//! attempt count.
//!
//! Durability, and why it is cheap:
//! - a lease is durable when [`TaskLog::lease`] returns: the attempt is on
//!   disk before the worker acts on it, so after a crash an attempt is never
//!   missing from a task's history (it reads "interrupted");
//! - settling does not wait for the disk; its effects are durable at the
//!   next sync, and any later lease waits for that sync, so a delivery can
//!   never leave before the job that queued it is durable;
//! - work is leased and settled in batches, so one sync serves as many
//!   outcomes as are ready.
//!
//! Two optional per-task keys give the pipeline debounce and ordering:
//! - an *order key*: tasks sharing one run one at a time, in publish order;
//!   only the oldest unfinished one is ever due, so others are not blocked;
//! - a *coalesce key* ([`TaskLog::coalesce`]): a task published while an
//!   earlier one with the same key still waits is merged into it and its due
//!   time pushed back (trailing-edge debounce).

mod engine;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use engine::Queue;
pub(crate) use engine::verify;

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The embedded store failed.
    #[error("queue store: {0}")]
    Sled(#[from] sled::Error),
    /// The sync that makes leases durable failed.
    #[error("queue store: {0}")]
    Store(#[from] crate::StoreError),
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] crate::JournalError),
    /// A task record could not be decoded.
    #[error("queue record `{0}` is corrupt")]
    Corrupt(String),
}

/// A queue topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Topic {
    /// An event to run through one plugin.
    Jobs,
    /// An outbound request to deliver.
    Deliveries,
    /// One slot of a plugin's schedule, due at the slot's time.
    Schedules,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 3] = [Topic::Jobs, Topic::Deliveries, Topic::Schedules];

    /// Name used in logs, metrics and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Jobs => "jobs",
            Topic::Deliveries => "deliveries",
            Topic::Schedules => "schedules",
        }
    }

    /// The topic with this [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Self> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its due time (or, when ordered, for its turn).
    Ready,
    /// Held by a worker until the lease expires.
    Leased,
    /// Finished.
    Done,
    /// Gave up; see the history for why. This is the dead-letter queue.
    Dead,
}

impl TaskState {
    /// Every state.
    pub const ALL: [TaskState; 4] = [
        TaskState::Ready,
        TaskState::Leased,
        TaskState::Done,
        TaskState::Dead,
    ];

    /// Name used in metrics and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Ready => "ready",
            TaskState::Leased => "leased",
            TaskState::Done => "done",
            TaskState::Dead => "dead",
        }
    }

    /// Done or dead: nothing will run it unless it is replayed.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Dead)
    }
}

/// One attempt's outcome, kept with the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the attempt ended, Unix ms.
    pub at_ms: u64,
    /// What happened.
    pub outcome: String,
}

/// The start of the notes the task log writes into a history itself (a
/// replay, a restart): they are not outcomes of attempts.
const NOTES: [&str; 3] = [REPLAYED, QUEUED_AGAIN, INTERRUPTED];
/// `replayed (was dead)`.
pub(crate) const REPLAYED: &str = "replayed (was ";
/// A replayed job's delivery, run again: `queued again by a replayed job (was done)`.
pub(crate) const QUEUED_AGAIN: &str = "queued again by a replayed job";
/// A lease the daemon stopped during.
pub(crate) const INTERRUPTED: &str = "interrupted: the daemon stopped during this attempt";

impl Attempt {
    /// Written by the task log itself, not by an attempt.
    pub fn is_note(&self) -> bool {
        NOTES.iter().any(|n| self.outcome.starts_with(n))
    }

    fn is_replay_note(&self) -> bool {
        self.outcome.starts_with(REPLAYED) || self.outcome.starts_with(QUEUED_AGAIN)
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique within its topic; publishing the same id twice is a no-op.
    pub id: String,
    /// Current state.
    pub state: TaskState,
    /// Leases taken since it was published or last replayed.
    pub attempts: u32,
    /// When it is due next (or when its lease expires), Unix ms.
    pub due_ms: u64,
    /// When it was published, Unix ms.
    pub created_ms: u64,
    /// Topic-specific payload.
    // Encoded as bytes (see `fieldhook_core::bytes`).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Outcome of every finished attempt, oldest first.
    pub history: Vec<Attempt>,
    /// Tasks sharing this key run one at a time, in publish order.
    pub order_key: Option<String>,
    /// The key it was coalesced under, if published by [`TaskLog::coalesce`].
    pub coalesce_key: Option<String>,
}

impl Task {
    /// Its attempts that failed, oldest first: every outcome but the task
    /// log's notes and those that finished it as done (also before a replay).
    pub fn failures(&self) -> impl Iterator<Item = &Attempt> {
        self.history
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                !a.is_note()
                    && match self.history.get(i + 1) {
                        Some(next) if next.is_replay_note() => next.outcome.contains("(was dead)"),
                        Some(_) => true,
                        None => self.state != TaskState::Done,
                    }
            })
            .map(|(_, a)| a)
    }
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
    /// When the task was published (or replayed), Unix ms.
    pub created_ms: u64,
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
    /// Run one at a time with the other tasks of this key, in publish order.
    pub order_key: Option<String>,
    /// Not due before this time, Unix ms (a schedule's next slot); none:
    /// due when published.
    pub due_ms: Option<u64>,
}

impl NewTask {
    /// An unordered task.
    pub fn new(topic: Topic, id: impl Into<String>, payload: Vec<u8>) -> Self {
        Self {
            topic,
            id: id.into(),
            payload,
            order_key: None,
            due_ms: None,
        }
    }

    /// The same task, not due before `due_ms`.
    pub fn due_at(self, due_ms: u64) -> Self {
        Self {
            due_ms: Some(due_ms),
            ..self
        }
    }
}

/// What [`TaskLog::coalesce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coalesced {
    /// A new task was published under this id.
    Published(String),
    /// Merged into this waiting task.
    Merged(String),
}

/// Tasks per topic and state, for metrics and stats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Depth {
    /// `(topic, state, count)` for every combination.
    pub counts: Vec<(Topic, TaskState, u64)>,
}

impl Depth {
    /// The count for one topic and state.
    pub fn get(&self, topic: Topic, state: TaskState) -> u64 {
        self.counts
            .iter()
            .find(|(t, s, _)| *t == topic && *s == state)
            .map_or(0, |c| c.2)
    }
}

/// How a leased task's attempt ended.
#[derive(Debug, Clone)]
pub enum TaskEnd {
    /// Finished; `follow_ups` are published in the same step (a job's
    /// deliveries are queued exactly when the job is done). A follow-up whose
    /// id exists and is finished runs again (a replayed job re-delivers).
    Done {
        /// What happened, for the history.
        outcome: String,
        /// Tasks to publish with it.
        follow_ups: Vec<NewTask>,
    },
    /// Run again after `delay_ms`; the failed attempt is recorded.
    Retry {
        /// What failed.
        outcome: String,
        /// Delay before the next attempt.
        delay_ms: u64,
    },
    /// Not attempted (its destination is throttled or its circuit open):
    /// due again after `delay_ms`, and the lease does not count as an
    /// attempt.
    Defer {
        /// Delay before it is due again.
        delay_ms: u64,
    },
    /// Give up; the task stays, dead, with its history.
    Dead {
        /// Why.
        reason: String,
    },
}

/// Where fan-out stands ([`TaskLog::fan_out_state`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutState {
    /// The last event whose jobs are published ("" before the first).
    pub cursor: String,
    /// Stored events to fan out again, oldest first.
    pub replays: Vec<String>,
}

/// Tasks just leased, not yet to be acted on: their attempts become
/// durable first ([`Leased::durable`]).
pub struct Leased {
    leases: Vec<Lease>,
    durable: BoxFuture<'static, Result<(), QueueError>>,
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("leases", &self.leases.len())
            .finish_non_exhaustive()
    }
}

impl Leased {
    /// Leases that become usable once `durable` resolves.
    pub fn new(leases: Vec<Lease>, durable: BoxFuture<'static, Result<(), QueueError>>) -> Self {
        Self { leases, durable }
    }

    /// How many tasks were leased.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether nothing was due.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The leases, once every one's attempt is on disk (so after a crash
    /// the attempt is in the task's history as interrupted).
    pub async fn durable(self) -> Result<Vec<Lease>, QueueError> {
        if !self.leases.is_empty() {
            self.durable.await?;
        }
        Ok(self.leases)
    }
}

/// One leased task's end, for [`TaskLog::settle`].
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The lease being ended.
    pub lease: Lease,
    /// How it ended.
    pub end: TaskEnd,
}

/// A durable log of leased tasks. Every method is one atomic step; the
/// embedded engine is [`Queue`].
pub trait TaskLog: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes tasks due at `now_ms`. A task whose id already exists in its
    /// topic is left as it is (publishing is idempotent). Returns how many
    /// were new.
    fn publish(&self, tasks: &[NewTask], now_ms: u64) -> Result<usize, QueueError>;

    /// Publishes `task` due at `now_ms + delay_ms`, unless a task published
    /// under the same `key` is still waiting (not yet leased): then that one
    /// takes `merge(its payload)` as its payload and becomes due at
    /// `now_ms + delay_ms` instead.
    fn coalesce(
        &self,
        task: &NewTask,
        key: &str,
        delay_ms: u64,
        now_ms: u64,
        merge: &(dyn Fn(&[u8]) -> Vec<u8> + Sync),
    ) -> Result<Coalesced, QueueError>;

    /// Leases up to `max` tasks of `topic` due at `now_ms`, for `lease_ms`.
    /// They are taken at once; [`Leased::durable`] hands them out once
    /// their attempts are on disk, so the caller can lease again while it
    /// waits.
    fn lease(
        &self,
        topic: Topic,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Leased, QueueError>;

    /// Ends leased tasks' attempts, all in one step. A lease that expired
    /// and was taken again is ignored (the newer attempt owns the task).
    /// Durable at the next [`TaskLog::sync`]; nothing leased after this
    /// returns can overtake it.
    fn settle(&self, settlements: Vec<Settlement>, now_ms: u64) -> Result<(), QueueError>;

    /// Waits until every step taken so far is on disk.
    fn sync(&self) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Keeps start-up bounded: when enough has changed since the last
    /// checkpoint, records the unfinished tasks as they are and drops what
    /// led to them. Returns whether it did. Cheap to call often.
    fn checkpoint(&self) -> BoxFuture<'_, Result<bool, QueueError>>;

    /// Where fan-out stands: the last event whose jobs are published, and
    /// the events to fan out again (replays).
    fn fan_out_state(&self) -> FanOutState;

    /// Publishes the jobs of a fan-out and moves its cursor to `through`
    /// (when given) and past the `replays` it handled, in one step: a crash
    /// redoes the whole fan-out or none of it (publishing is idempotent).
    fn fanned_out(
        &self,
        jobs: &[NewTask],
        through: Option<&str>,
        replays: &[String],
        now_ms: u64,
    ) -> Result<usize, QueueError>;

    /// Fans a stored event out again (replay).
    fn requeue(&self, event_id: &str) -> Result<(), QueueError>;

    /// Whether an event still waits for fan-out (retention keeps it).
    fn waiting_fan_out(&self, event_id: &str) -> bool;

    /// Makes a finished (done or dead) task run again, due now, with a fresh
    /// attempt count; its history is kept. Returns false when the task does
    /// not exist or is not finished.
    fn replay(&self, topic: Topic, id: &str, now_ms: u64) -> Result<bool, QueueError>;

    /// One task.
    fn get(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError>;

    /// Tasks of a topic in id order (event ids are time-sortable, so this is
    /// arrival order), starting after `after`, that pass `keep`, at most `limit`.
    fn list(
        &self,
        topic: Topic,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, QueueError>;

    /// Tasks of a topic that pass `keep`, newest first: every unfinished
    /// one, and finished ones from the newest back, at most `scan` of those
    /// examined (a page's read stays bounded however long the log).
    fn newest(
        &self,
        topic: Topic,
        scan: usize,
        keep: &dyn Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, QueueError>;

    /// Tasks of a topic whose id starts with `prefix`, in id order.
    fn with_prefix(&self, topic: Topic, prefix: &str) -> Result<Vec<Task>, QueueError>;

    /// Removes done tasks whose id sorts before `before` (ids start with a
    /// time-sortable event id), at most `limit`; returns how many.
    fn purge_done(&self, topic: Topic, before: &str, limit: usize) -> Result<usize, QueueError> {
        self.purge_done_in(topic, "", before, limit)
    }

    /// Removes done tasks whose id starts with `prefix` and sorts before
    /// `before`, at most `limit`; returns how many. For ids that are
    /// time-sortable only after a prefix (a schedule's slots).
    fn purge_done_in(
        &self,
        topic: Topic,
        prefix: &str,
        before: &str,
        limit: usize,
    ) -> Result<usize, QueueError>;

    /// After a restart nobody holds a lease: make leased tasks due now, each
    /// attempt recorded as interrupted.
    fn recover(&self, now_ms: u64) -> Result<usize, QueueError>;

    /// The earliest due time of a topic, if any task is waiting.
    fn next_due(&self, topic: Topic) -> Result<Option<u64>, QueueError>;

    /// Tasks per topic and state.
    fn depth(&self) -> Depth;

    /// Finishes one leased task (see [`TaskEnd::Done`]).
    fn ack(
        &self,
        lease: &Lease,
        outcome: &str,
        follow_ups: &[NewTask],
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let end = TaskEnd::Done {
            outcome: outcome.to_owned(),
            follow_ups: follow_ups.to_vec(),
        };
        self.settle(
            vec![Settlement {
                lease: lease.clone(),
                end,
            }],
            now_ms,
        )
    }

    /// Releases one leased task to run again later (see [`TaskEnd::Retry`]).
    fn retry(
        &self,
        lease: &Lease,
        delay_ms: u64,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let end = TaskEnd::Retry {
            outcome: outcome.to_owned(),
            delay_ms,
        };
        self.settle(
            vec![Settlement {
                lease: lease.clone(),
                end,
            }],
            now_ms,
        )
    }

    /// Gives one leased task back unattempted (see [`TaskEnd::Defer`]).
    fn defer(&self, lease: &Lease, delay_ms: u64, now_ms: u64) -> Result<(), QueueError> {
        let end = TaskEnd::Defer { delay_ms };
        self.settle(
            vec![Settlement {
                lease: lease.clone(),
                end,
            }],
            now_ms,
        )
    }

    /// Gives up on one leased task (see [`TaskEnd::Dead`]).
    fn dead_letter(&self, lease: &Lease, reason: &str, now_ms: u64) -> Result<(), QueueError> {
        let end = TaskEnd::Dead {
            reason: reason.to_owned(),
        };
        self.settle(
            vec![Settlement {
                lease: lease.clone(),
                end,
            }],
            now_ms,
        )
    }
}
