//! The embedded [`TaskLog`]: unfinished tasks in memory and in a journal,
//! finished ones in sled.
//!
//! - Unfinished (ready or leased) tasks live in memory with the index that
//!   schedules them (what is due when, order lists, coalescing bursts).
//!   Every change to one is appended to the [`journal`](super::journal),
//!   whose writer makes it durable with one fdatasync per group; a
//!   snapshot now and then ([`TaskLog::checkpoint`]) keeps opening bounded
//!   by the work in hand, whatever the history.
//! - Finished (done or dead) tasks are history: one sled record each, in
//!   the `queue` tree, for the admin API and replay, never read at start.
//!
//! Keys in the `queue` tree (topic is `jobs` or `deliveries`):
//!
//! | key                  | value                                     |
//! |----------------------|-------------------------------------------|
//! | `t` topic `\0` id    | a finished (done or dead) [`Task`]        |
//! | `n` topic `\0` state | how many finished tasks are in that state |
//! | `v`                  | layout version                            |
//!
//! Earlier layouts are converted once, when first opened: layout 1 kept
//! every task under `t` with `r` due, `o` order and `c` coalesce entries;
//! layout 2 kept unfinished tasks under `u`.
//!
//! One mutex orders every change, so the journal's order is the task log's.
//! A lease waits until the journal is durable; that sync also covers every
//! settlement appended before, so nothing leased can overtake the step that
//! queued it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use super::{
    Attempt, Coalesced, Depth, FanOutState, Lease, Leased, NewTask, QueueError, Settlement, Task,
    TaskEnd, TaskLog, TaskState, Topic,
};
use crate::EventStore;
use crate::journal::{Change, Frames, Journal, Record, Snapshot};

/// Layout version written under `v`.
const LAYOUT: u8 = 3;
const VERSION_KEY: &[u8] = b"v";

const UNFINISHED: u8 = b'u';
const FINISHED: u8 = b't';
const COUNT: u8 = b'n';

/// Journal records after which a checkpoint is worth taking.
const CHECKPOINT_RECORDS: u64 = 200_000;

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

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Task, QueueError> {
    postcard::from_bytes(bytes)
        .map_err(|_| QueueError::Corrupt(String::from_utf8_lossy(key).into_owned()))
}

#[derive(Debug, Default)]
struct TopicIndex {
    /// Every unfinished task, by id.
    live: HashMap<Arc<str>, Task>,
    /// `(due, id)` of every task that may run: ready tasks that are not
    /// waiting their turn in an order list, and leased ones (due when the
    /// lease expires).
    due: BTreeSet<(u64, Arc<str>)>,
    /// Order key -> unfinished tasks under it, head first.
    orders: HashMap<String, VecDeque<Arc<str>>>,
    /// Coalesce key -> the task a burst merges into.
    coalescing: HashMap<String, Arc<str>>,
    done: u64,
    dead: u64,
}

impl TopicIndex {
    fn finished(&mut self, state: TaskState) -> &mut u64 {
        if state == TaskState::Dead {
            &mut self.dead
        } else {
            &mut self.done
        }
    }

    /// Adds an unfinished task to the index (as opening and publishing do).
    fn admit(&mut self, task: Task) {
        let id: Arc<str> = task.id.as_str().into();
        if let Some(key) = &task.coalesce_key {
            // In id order: the newest task of a key is the one a burst
            // merges into (while it is ready).
            self.coalescing.insert(key.clone(), id.clone());
        }
        let due = task.due_ms;
        let order_key = task.order_key.clone();
        self.live.insert(id.clone(), task);
        enqueue(self, &id, order_key, due);
    }
}

#[derive(Debug, Default)]
struct Index {
    topics: [TopicIndex; 3],
    /// The last event whose jobs are published.
    fanned_out: String,
    /// Events to fan out again.
    replays: BTreeSet<String>,
    /// Journal records since the last checkpoint.
    since_checkpoint: u64,
}

impl Index {
    fn topic(&mut self, topic: Topic) -> &mut TopicIndex {
        match topic {
            Topic::Jobs => &mut self.topics[0],
            Topic::Deliveries => &mut self.topics[1],
            Topic::Schedules => &mut self.topics[2],
        }
    }
}

/// One step's writes: journal records for unfinished tasks and counts,
/// sled writes for the finished history.
///
/// sled is written behind and the journal synced on demand, so after a
/// crash sled may hold a history record whose journal records were lost,
/// or lack one whose records were kept. The journal is what was promised,
/// so opening follows it: a task unfinished in the journal stays
/// unfinished whatever sled holds (a job cut short while finishing runs
/// again and publishes nothing twice), and a finish in the journal
/// rewrites a history record sled lost. Nothing ever removes a history
/// record because a task runs again (a replay): the unfinished task hides
/// it until it finishes and overwrites it, so a crash cannot lose both.
struct Step<'a> {
    tree: &'a sled::Tree,
    frames: Frames,
    history: Vec<(Vec<u8>, Vec<u8>)>,
    counts: Vec<Topic>,
}

impl<'a> Step<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            frames: Frames::default(),
            history: Vec::new(),
            counts: Vec::new(),
        }
    }

    fn put(&mut self, topic: Topic, task: &Task) {
        self.frames.push(&Change::Put(topic, task));
    }

    fn lease(&mut self, topic: Topic, task: &Task) {
        self.frames
            .push(&Change::Lease(topic, &task.id, task.attempts, task.due_ms));
    }

    /// `task` finished; its last attempt is the last in its history.
    fn finish(&mut self, topic: Topic, task: &Task) {
        if let Some(last) = task.history.last() {
            self.frames
                .push(&Change::Finish(topic, &task.id, task.state, last));
        } else {
            // Every finish records an attempt; without one the whole task
            // is journaled as it is.
            self.frames.push(&Change::Put(topic, task));
        }
        self.history
            .push((prefixed(FINISHED, topic, task.id.as_bytes()), encode(task)));
        self.count(topic);
    }

    /// The topic's finished counts changed in this step.
    fn count(&mut self, topic: Topic) {
        if !self.counts.contains(&topic) {
            self.counts.push(topic);
        }
    }

    /// Journals the step and writes its history records, under the task
    /// log's lock, so the journal's order is the task log's.
    fn apply(mut self, index: &mut Index, journal: &Journal) -> Result<(), QueueError> {
        for topic in std::mem::take(&mut self.counts) {
            let t = index.topic(topic);
            self.frames.push(&Change::Counts(topic, t.done, t.dead));
        }
        index.since_checkpoint = index.since_checkpoint.saturating_add(self.frames.len());
        journal.append(&self.frames);
        for (k, v) in self.history {
            self.tree.insert(k, v)?;
        }
        Ok(())
    }
}

/// The embedded [`TaskLog`].
#[derive(Clone)]
pub struct Queue {
    tree: sled::Tree,
    index: Arc<Mutex<Index>>,
    journal: Arc<Journal>,
    store: EventStore,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens the task log of `store`: the finished history in its database,
    /// the unfinished tasks from its journal (in the store's directory,
    /// `queue/`), converting an older layout first.
    pub fn open(store: &EventStore) -> Result<Self, QueueError> {
        let tree = store.db().open_tree("queue")?;
        let version = tree.get(VERSION_KEY)?.and_then(|v| v.first().copied());
        if version.is_none() {
            migrate_layout_1(&tree)?;
        }
        let journal = store.journal().clone();
        // Taken once per store: a second task log on the same store starts
        // from what the first one journals.
        let recovered = store.take_recovered().unwrap_or_default();
        let mut index = Index {
            fanned_out: recovered.snapshot.fanned_out,
            replays: recovered.snapshot.replays.into_iter().collect(),
            ..Index::default()
        };
        // Finished counts: from the snapshot, then the journal's latest;
        // layout 2 kept them in sled.
        if version == Some(LAYOUT) {
            for (topic, done, dead) in recovered.snapshot.counts {
                let t = index.topic(topic);
                (t.done, t.dead) = (done, dead);
            }
        } else {
            for topic in Topic::ALL {
                let t = index.topic(topic);
                for state in [TaskState::Done, TaskState::Dead] {
                    *t.finished(state) = tree
                        .get(prefixed(COUNT, topic, state.name().as_bytes()))?
                        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                        .map_or(0, u64::from_be_bytes);
                }
            }
        }
        let mut unfinished: HashMap<(Topic, String), Task> = HashMap::new();
        for (topic, task) in recovered.snapshot.tasks {
            unfinished.insert((topic, task.id.clone()), task);
        }
        if version != Some(LAYOUT) {
            // Layout 2 kept unfinished tasks in sled; they join the
            // journal's, and leave sled once the first snapshot holds them.
            for topic in Topic::ALL {
                for item in tree.scan_prefix(prefixed(UNFINISHED, topic, b"")) {
                    let (k, v) = item?;
                    let task = decode(&k, &v)?;
                    unfinished.insert((topic, task.id.clone()), task);
                }
            }
        }
        for record in recovered.records {
            match record {
                Record::Put(topic, task) => {
                    unfinished.insert((topic, task.id.clone()), task);
                }
                Record::Lease(topic, id, attempt, due_ms) => {
                    if let Some(task) = unfinished.get_mut(&(topic, id)) {
                        task.state = TaskState::Leased;
                        task.attempts = attempt;
                        task.due_ms = due_ms;
                    }
                }
                Record::Finish(topic, id, state, last) => {
                    // Every task finishing was journaled unfinished first.
                    let Some(mut task) = unfinished.remove(&(topic, id)) else {
                        continue;
                    };
                    task.state = state;
                    task.history.push(last);
                    // The history write may not have reached the disk (a
                    // longer history there is a later finish).
                    let key = prefixed(FINISHED, topic, task.id.as_bytes());
                    let stored = tree.get(&key)?.map(|v| decode(&key, &v)).transpose()?;
                    if stored.is_none_or(|s| s.history.len() <= task.history.len()) {
                        tree.insert(key, encode(&task))?;
                    }
                }
                Record::FannedOut(through, replays) => {
                    if let Some(through) = through
                        && through > index.fanned_out
                    {
                        index.fanned_out = through;
                    }
                    for id in replays {
                        index.replays.remove(&id);
                    }
                }
                Record::Requeue(id) => {
                    index.replays.insert(id);
                }
                Record::Counts(topic, done, dead) => {
                    let t = index.topic(topic);
                    (t.done, t.dead) = (done, dead);
                }
                // The store took its own.
                Record::Event(..) | Record::Message(..) => {}
            }
        }
        let tasks: Vec<(Topic, Task)> = unfinished
            .into_iter()
            .map(|((topic, _), task)| (topic, task))
            .collect();
        let mut tasks = tasks;
        // Order lists are rebuilt in publish order: ids sort by event.
        tasks.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        for (topic, task) in tasks {
            index.topic(topic).admit(task);
        }
        // What was recovered is written again by the first checkpoint.
        index.since_checkpoint = CHECKPOINT_RECORDS;
        Ok(Self {
            tree,
            index: Arc::new(Mutex::new(index)),
            journal,
            store: store.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves memory as far as the last
        // applied step, which the journal also holds: carry on.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_finished(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        let key = prefixed(FINISHED, topic, id.as_bytes());
        self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// Every task of a topic (for inspection and tests).
    pub fn tasks(&self, topic: Topic) -> Result<Vec<Task>, QueueError> {
        self.list(topic, None, usize::MAX, &|_| true)
    }

    /// Publishes `tasks` within a step; a finished one runs again when
    /// `rerun_finished` (a replayed job's deliveries).
    fn publish_in(
        &self,
        index: &mut Index,
        step: &mut Step<'_>,
        tasks: &[NewTask],
        now_ms: u64,
        rerun_finished: bool,
    ) -> Result<usize, QueueError> {
        let mut added = 0;
        for new in tasks {
            let t = index.topic(new.topic);
            if t.live.contains_key(new.id.as_str()) {
                continue;
            }
            let task = match self.read_finished(new.topic, &new.id)? {
                Some(old) if rerun_finished => {
                    *t.finished(old.state) = t.finished(old.state).saturating_sub(1);
                    step.count(new.topic);
                    let mut history = old.history;
                    history.push(Attempt {
                        at_ms: now_ms,
                        outcome: format!("{} (was {})", super::QUEUED_AGAIN, old.state.name()),
                    });
                    Task {
                        state: TaskState::Ready,
                        due_ms: now_ms,
                        payload: new.payload.clone(),
                        attempts: 0,
                        created_ms: now_ms,
                        history,
                        ..old
                    }
                }
                Some(_) => continue,
                None => Task {
                    id: new.id.clone(),
                    state: TaskState::Ready,
                    attempts: 0,
                    due_ms: new.due_ms.map_or(now_ms, |due| due.max(now_ms)),
                    created_ms: now_ms,
                    payload: new.payload.clone(),
                    history: Vec::new(),
                    order_key: new.order_key.clone(),
                    coalesce_key: None,
                },
            };
            step.put(new.topic, &task);
            t.admit(task);
            added += 1;
        }
        Ok(added)
    }

    /// Ends one leased task's attempt within a step.
    fn settle_one(
        &self,
        index: &mut Index,
        step: &mut Step<'_>,
        s: Settlement,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let topic = s.lease.topic;
        let t = index.topic(topic);
        let id: Arc<str> = s.lease.id.as_str().into();
        let Some(task) = t.live.get_mut(&id) else {
            return Ok(());
        };
        // A lease that expired and was taken again belongs to the newer attempt.
        if task.state != TaskState::Leased || task.attempts != s.lease.attempt {
            return Ok(());
        }
        t.due.remove(&(task.due_ms, id.clone()));
        match s.end {
            TaskEnd::Retry { outcome, delay_ms } => {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome,
                });
                ready_again(t, step, topic, &id, now_ms.saturating_add(delay_ms));
            }
            TaskEnd::Defer { delay_ms } => {
                task.attempts = task.attempts.saturating_sub(1);
                ready_again(t, step, topic, &id, now_ms.saturating_add(delay_ms));
            }
            TaskEnd::Done {
                outcome,
                follow_ups,
            } => {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome,
                });
                task.state = TaskState::Done;
                // Follow-ups first: a crash between leaves a job that runs
                // again, never deliveries that were not queued.
                self.publish_in(index, step, &follow_ups, now_ms, true)?;
                finish(index.topic(topic), step, topic, &id, now_ms);
            }
            TaskEnd::Dead { reason } => {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome: reason,
                });
                task.state = TaskState::Dead;
                finish(t, step, topic, &id, now_ms);
            }
        }
        Ok(())
    }
}

/// Makes an unfinished task eligible at `due_ms`: it joins its order list
/// (due only when it is the head), else gets a due entry.
fn enqueue(t: &mut TopicIndex, id: &Arc<str>, order_key: Option<String>, due_ms: u64) {
    let is_head = match order_key {
        None => true,
        Some(key) => {
            let list = t.orders.entry(key).or_default();
            if !list.contains(id) {
                list.push_back(id.clone());
            }
            list.front() == Some(id)
        }
    };
    if is_head {
        t.due.insert((due_ms, id.clone()));
    }
}

/// A leased task becomes ready again at `due_ms`, keeping its place in its
/// order list.
fn ready_again(t: &mut TopicIndex, step: &mut Step<'_>, topic: Topic, id: &Arc<str>, due_ms: u64) {
    let Some(task) = t.live.get_mut(id) else {
        return;
    };
    task.state = TaskState::Ready;
    task.due_ms = due_ms;
    step.put(topic, task);
    t.due.insert((due_ms, id.clone()));
}

/// A task is done or dead: out of the index, into the history, and the
/// next task of its order list due.
fn finish(t: &mut TopicIndex, step: &mut Step<'_>, topic: Topic, id: &Arc<str>, now_ms: u64) {
    let Some(task) = t.live.remove(id) else {
        return;
    };
    *t.finished(task.state) = t.finished(task.state).saturating_add(1);
    step.finish(topic, &task);
    if let Some(key) = &task.coalesce_key
        && t.coalescing.get(key) == Some(id)
    {
        t.coalescing.remove(key);
    }
    let Some(key) = &task.order_key else {
        return;
    };
    let Some(list) = t.orders.get_mut(key) else {
        return;
    };
    let was_head = list.front() == Some(id);
    list.retain(|x| x != id);
    let next = list.front().cloned();
    if list.is_empty() {
        t.orders.remove(key);
    }
    if was_head
        && let Some(next) = next
        && let Some(n) = t.live.get_mut(&next)
    {
        n.due_ms = n.due_ms.max(now_ms);
        t.due.insert((n.due_ms, next));
    }
}

impl TaskLog for Queue {
    fn publish(&self, tasks: &[NewTask], now_ms: u64) -> Result<usize, QueueError> {
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let added = self.publish_in(&mut index, &mut step, tasks, now_ms, false)?;
        step.apply(&mut index, &self.journal)?;
        Ok(added)
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
        let due_ms = now_ms.saturating_add(delay_ms);
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let t = index.topic(topic);
        if let Some(id) = t.coalescing.get(key).cloned()
            && let Some(task) = t.live.get_mut(&id)
            && task.state == TaskState::Ready
        {
            task.payload = merge(&task.payload);
            let had_due = t.due.remove(&(task.due_ms, id.clone()));
            task.due_ms = due_ms;
            if had_due {
                t.due.insert((due_ms, id.clone()));
            }
            step.put(topic, task);
            step.apply(&mut index, &self.journal)?;
            return Ok(Coalesced::Merged(id.to_string()));
        }
        if t.live.contains_key(new.id.as_str()) || self.read_finished(topic, &new.id)?.is_some() {
            // Already published (a fan-out redone after a crash).
            return Ok(Coalesced::Published(new.id.clone()));
        }
        let task = Task {
            id: new.id.clone(),
            state: TaskState::Ready,
            attempts: 0,
            due_ms,
            created_ms: now_ms,
            payload: new.payload.clone(),
            history: Vec::new(),
            order_key: new.order_key.clone(),
            coalesce_key: Some(key.to_owned()),
        };
        step.put(topic, &task);
        t.admit(task);
        step.apply(&mut index, &self.journal)?;
        Ok(Coalesced::Published(new.id.clone()))
    }

    fn lease(
        &self,
        topic: Topic,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Leased, QueueError> {
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let t = index.topic(topic);
        let mut leases = Vec::new();
        while leases.len() < max {
            let Some((due, id)) = t.due.first().cloned() else {
                break;
            };
            if due > now_ms {
                break;
            }
            t.due.pop_first();
            // A leased task here is one whose lease expired: taken again.
            let Some(task) = t.live.get_mut(&id) else {
                continue;
            };
            task.state = TaskState::Leased;
            task.attempts = task.attempts.saturating_add(1);
            task.due_ms = now_ms.saturating_add(lease_ms);
            step.lease(topic, task);
            t.due.insert((task.due_ms, id.clone()));
            leases.push(Lease {
                topic,
                id: task.id.clone(),
                attempt: task.attempts,
                created_ms: task.created_ms,
                payload: task.payload.clone(),
            });
        }
        step.apply(&mut index, &self.journal)?;
        drop(index);
        // The attempt is on disk before anyone acts on it.
        let journal = self.journal.clone();
        Ok(Leased::new(
            leases,
            Box::pin(async move { Ok(journal.sync().await?) }),
        ))
    }

    fn settle(&self, settlements: Vec<Settlement>, now_ms: u64) -> Result<(), QueueError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        for s in settlements {
            self.settle_one(&mut index, &mut step, s, now_ms)?;
        }
        step.apply(&mut index, &self.journal)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { Ok(self.journal.sync().await?) })
    }

    fn fan_out_state(&self) -> FanOutState {
        let index = self.lock();
        FanOutState {
            cursor: index.fanned_out.clone(),
            replays: index.replays.iter().cloned().collect(),
        }
    }

    fn fanned_out(
        &self,
        jobs: &[NewTask],
        through: Option<&str>,
        replays: &[String],
        now_ms: u64,
    ) -> Result<usize, QueueError> {
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let added = self.publish_in(&mut index, &mut step, jobs, now_ms, false)?;
        if let Some(through) = through
            && through > index.fanned_out.as_str()
        {
            index.fanned_out = through.to_owned();
        }
        for id in replays {
            index.replays.remove(id);
        }
        step.frames.push(&Change::FannedOut(through, replays));
        step.apply(&mut index, &self.journal)?;
        Ok(added)
    }

    fn requeue(&self, event_id: &str) -> Result<(), QueueError> {
        let mut index = self.lock();
        if index.replays.insert(event_id.to_owned()) {
            let mut step = Step::new(&self.tree);
            step.frames.push(&Change::Requeue(event_id));
            step.apply(&mut index, &self.journal)?;
        }
        Ok(())
    }

    fn waiting_fan_out(&self, event_id: &str) -> bool {
        let index = self.lock();
        event_id > index.fanned_out.as_str() || index.replays.contains(event_id)
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<bool, QueueError>> {
        Box::pin(async move {
            let (n, snapshot) = {
                let mut index = self.lock();
                if index.since_checkpoint < CHECKPOINT_RECORDS {
                    return Ok(false);
                }
                let mut tasks = Vec::new();
                for topic in Topic::ALL {
                    for task in index.topic(topic).live.values() {
                        tasks.push((topic, task.clone()));
                    }
                }
                let counts = Topic::ALL
                    .into_iter()
                    .map(|topic| {
                        let t = index.topic(topic);
                        (topic, t.done, t.dead)
                    })
                    .collect();
                let snapshot = Snapshot {
                    tasks,
                    counts,
                    fanned_out: index.fanned_out.clone(),
                    replays: index.replays.iter().cloned().collect(),
                };
                // A rotation that fails leaves the count as it was: the
                // next call tries again.
                let n = self.journal.rotate()?;
                index.since_checkpoint = 0;
                (n, snapshot)
            };
            let written = async {
                // sled holds what the old journals replay (events, finished
                // tasks): it must be on disk before those journals go.
                self.store.sync_all().await?;
                self.journal.checkpoint(n, snapshot).await?;
                Ok::<_, QueueError>(())
            };
            if let Err(e) = written.await {
                // Tried again at the next call: until a checkpoint lands,
                // start-up replays the journals it would have replaced.
                let mut index = self.lock();
                index.since_checkpoint = index.since_checkpoint.max(CHECKPOINT_RECORDS);
                return Err(e);
            }
            // Layout 2's unfinished records and the events tree's old
            // fan-out state are in the snapshot now.
            if self.tree.get(VERSION_KEY)?.and_then(|v| v.first().copied()) != Some(LAYOUT) {
                for topic in Topic::ALL {
                    for kind in [UNFINISHED, COUNT] {
                        for k in self.tree.scan_prefix(prefixed(kind, topic, b"")).keys() {
                            self.tree.remove(k?)?;
                        }
                    }
                }
                self.store.drop_legacy_fan_out()?;
                self.tree.insert(VERSION_KEY, &[LAYOUT][..])?;
                self.store.sync_all().await?;
            }
            Ok(true)
        })
    }

    fn replay(&self, topic: Topic, id: &str, now_ms: u64) -> Result<bool, QueueError> {
        let mut index = self.lock();
        if index.topic(topic).live.contains_key(id) {
            return Ok(false);
        }
        let Some(mut task) = self.read_finished(topic, id)? else {
            return Ok(false);
        };
        let mut step = Step::new(&self.tree);
        let t = index.topic(topic);
        let from = task.state;
        *t.finished(from) = t.finished(from).saturating_sub(1);
        task.state = TaskState::Ready;
        task.attempts = 0;
        task.created_ms = now_ms;
        task.due_ms = now_ms;
        task.history.push(Attempt {
            at_ms: now_ms,
            outcome: format!("{}{})", super::REPLAYED, from.name()),
        });
        step.put(topic, &task);
        step.count(topic);
        t.admit(task);
        step.apply(&mut index, &self.journal)?;
        Ok(true)
    }

    fn get(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        if let Some(task) = self.lock().topic(topic).live.get(id) {
            return Ok(Some(task.clone()));
        }
        self.read_finished(topic, id)
    }

    fn list(
        &self,
        topic: Topic,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, QueueError> {
        // The unfinished ones that qualify, in id order, merged with the
        // history scan (also in id order).
        let (mut unfinished, live): (Vec<Task>, std::collections::HashSet<Arc<str>>) = {
            let mut index = self.lock();
            let t = index.topic(topic);
            (
                t.live
                    .values()
                    .filter(|t| after.is_none_or(|a| t.id.as_str() > a) && keep(t))
                    .cloned()
                    .collect(),
                t.live.keys().cloned().collect(),
            )
        };
        unfinished.sort_by(|a, b| a.id.cmp(&b.id));
        let mut unfinished = unfinished.into_iter().peekable();
        let prefix = prefixed(FINISHED, topic, b"");
        let start = match after {
            Some(a) => {
                let mut k = prefixed(FINISHED, topic, a.as_bytes());
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut finished = self.tree.range(start..).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next_finished = match finished.peek() {
                Some(Ok((k, _))) if k.starts_with(&prefix) => Some(k[prefix.len()..].to_vec()),
                Some(Err(_)) => Some(Vec::new()),
                _ => None,
            };
            let take_unfinished = match (unfinished.peek(), &next_finished) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(u), Some(f)) => u.id.as_bytes() <= f.as_slice(),
            };
            if take_unfinished {
                if let Some(task) = unfinished.next() {
                    out.push(task);
                }
                continue;
            }
            let Some(item) = finished.next() else {
                break;
            };
            let (k, v) = item?;
            // A task running again hides its earlier finish.
            if std::str::from_utf8(&k[prefix.len()..]).is_ok_and(|id| live.contains(id)) {
                continue;
            }
            let task = decode(&k, &v)?;
            if keep(&task) {
                out.push(task);
            }
        }
        Ok(out)
    }

    fn newest(
        &self,
        topic: Topic,
        scan: usize,
        keep: &dyn Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, QueueError> {
        let (mut out, live): (Vec<Task>, std::collections::HashSet<Arc<str>>) = {
            let mut index = self.lock();
            let t = index.topic(topic);
            (
                t.live.values().filter(|t| keep(t)).cloned().collect(),
                t.live.keys().cloned().collect(),
            )
        };
        let prefix = prefixed(FINISHED, topic, b"");
        // A task running again hides its earlier finish.
        let hidden =
            |k: &[u8]| std::str::from_utf8(&k[prefix.len()..]).is_ok_and(|id| live.contains(id));
        let finished = self
            .tree
            .scan_prefix(&prefix)
            .rev()
            .filter(|item| !item.as_ref().is_ok_and(|(k, _)| hidden(k)))
            .take(scan);
        for item in finished {
            let (k, v) = item?;
            let task = decode(&k, &v)?;
            if keep(&task) {
                out.push(task);
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    fn with_prefix(&self, topic: Topic, prefix: &str) -> Result<Vec<Task>, QueueError> {
        let mut out: Vec<Task> = self
            .lock()
            .topic(topic)
            .live
            .values()
            .filter(|t| t.id.starts_with(prefix))
            .cloned()
            .collect();
        let running: std::collections::HashSet<String> = out.iter().map(|t| t.id.clone()).collect();
        for item in self
            .tree
            .scan_prefix(prefixed(FINISHED, topic, prefix.as_bytes()))
        {
            let (k, v) = item?;
            let task = decode(&k, &v)?;
            // A task running again hides its earlier finish.
            if !running.contains(&task.id) {
                out.push(task);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn purge_done_in(
        &self,
        topic: Topic,
        prefix: &str,
        before: &str,
        limit: usize,
    ) -> Result<usize, QueueError> {
        let mut doomed = Vec::new();
        let start = prefixed(FINISHED, topic, prefix.as_bytes());
        let end = prefixed(FINISHED, topic, before.as_bytes());
        if end <= start {
            return Ok(0);
        }
        for item in self.tree.range(start.clone()..end) {
            if doomed.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if decode(&k, &v).is_ok_and(|t| t.state == TaskState::Done) {
                doomed.push(k);
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut index = self.lock();
        let mut purged = 0u64;
        let prefix_len = prefixed(FINISHED, topic, b"").len();
        for k in doomed {
            // Only if it is still done and not running again (replayed
            // meanwhile).
            let running = std::str::from_utf8(&k[prefix_len..])
                .is_ok_and(|id| index.topic(topic).live.contains_key(id));
            if !running
                && self
                    .tree
                    .get(&k)?
                    .is_some_and(|v| decode(&k, &v).is_ok_and(|t| t.state == TaskState::Done))
            {
                self.tree.remove(k)?;
                purged += 1;
            }
        }
        let mut step = Step::new(&self.tree);
        let t = index.topic(topic);
        t.done = t.done.saturating_sub(purged);
        step.count(topic);
        step.apply(&mut index, &self.journal)?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    fn recover(&self, now_ms: u64) -> Result<usize, QueueError> {
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let mut recovered = 0;
        for topic in Topic::ALL {
            let t = index.topic(topic);
            let leased: Vec<Arc<str>> = t
                .live
                .iter()
                .filter(|(_, task)| task.state == TaskState::Leased)
                .map(|(id, _)| id.clone())
                .collect();
            for id in leased {
                let Some(task) = t.live.get_mut(&id) else {
                    continue;
                };
                t.due.remove(&(task.due_ms, id.clone()));
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome: super::INTERRUPTED.into(),
                });
                ready_again(t, &mut step, topic, &id, now_ms);
                recovered += 1;
            }
        }
        step.apply(&mut index, &self.journal)?;
        Ok(recovered)
    }

    fn next_due(&self, topic: Topic) -> Result<Option<u64>, QueueError> {
        Ok(self.lock().topic(topic).due.first().map(|(due, _)| *due))
    }

    fn depth(&self) -> Depth {
        let mut index = self.lock();
        let mut counts = Vec::new();
        for topic in Topic::ALL {
            let t = index.topic(topic);
            let leased = t
                .live
                .values()
                .filter(|task| task.state == TaskState::Leased)
                .count() as u64;
            let ready = t.live.len() as u64 - leased;
            counts.push((topic, TaskState::Ready, ready));
            counts.push((topic, TaskState::Leased, leased));
            counts.push((topic, TaskState::Done, t.done));
            counts.push((topic, TaskState::Dead, t.dead));
        }
        Depth { counts }
    }
}

/// Converts layout 1 (every task under `t`, with `r`, `o` and `c` index
/// entries) to layout 2: unfinished tasks move to `u`, the index entries
/// go, finished tasks are counted.
fn migrate_layout_1(tree: &sled::Tree) -> Result<(), QueueError> {
    let mut batch = sled::Batch::default();
    for topic in Topic::ALL {
        let (mut done, mut dead) = (0u64, 0u64);
        for item in tree.scan_prefix(prefixed(FINISHED, topic, b"")) {
            let (k, v) = item?;
            let Ok(task) = decode(&k, &v) else {
                continue;
            };
            match task.state {
                TaskState::Done => done += 1,
                TaskState::Dead => dead += 1,
                TaskState::Ready | TaskState::Leased => {
                    batch.remove(k.clone());
                    batch.insert(prefixed(UNFINISHED, topic, task.id.as_bytes()), v);
                }
            }
        }
        for (state, n) in [(TaskState::Done, done), (TaskState::Dead, dead)] {
            batch.insert(
                prefixed(COUNT, topic, state.name().as_bytes()),
                &n.to_be_bytes()[..],
            );
        }
        for kind in [b'r', b'o', b'c'] {
            for k in tree.scan_prefix(prefixed(kind, topic, b"")).keys() {
                batch.remove(k?);
            }
        }
    }
    batch.insert(VERSION_KEY, &[2u8][..]);
    tree.apply_batch(batch)?;
    Ok(())
}

/// Checks the finished history's invariants without changing anything;
/// returns one line per problem found. Finished counts that differ from
/// the records are not a problem (a crash between a step and its count
/// leaves them off by that step; they only feed metrics): they are in
/// `notes`.
pub(crate) fn verify(
    db: &sled::Db,
    journaled: &crate::journal::Recovered,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, QueueError> {
    let tree = db.open_tree("queue")?;
    // The counts the daemon would start with: the journal's, else (an
    // older layout) sled's.
    let mut counts: HashMap<Topic, (u64, u64)> = journaled
        .snapshot
        .counts
        .iter()
        .map(|&(topic, done, dead)| (topic, (done, dead)))
        .collect();
    for record in &journaled.records {
        if let Record::Counts(topic, done, dead) = record {
            counts.insert(*topic, (*done, *dead));
        }
    }
    // Tasks running again hide their earlier finish.
    let mut running: std::collections::HashSet<(Topic, &str)> = journaled
        .snapshot
        .tasks
        .iter()
        .map(|(topic, task)| (*topic, task.id.as_str()))
        .collect();
    for record in &journaled.records {
        match record {
            Record::Put(topic, task) => {
                running.insert((*topic, task.id.as_str()));
            }
            Record::Finish(topic, id, ..) => {
                running.remove(&(*topic, id.as_str()));
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for topic in Topic::ALL {
        let name = topic.name();
        let prefix = prefixed(FINISHED, topic, b"");
        let (mut done, mut dead) = (0u64, 0u64);
        for item in tree.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            match postcard::from_bytes::<Task>(&v) {
                Err(e) => problems.push(format!("{name} task `{id}` does not decode: {e}")),
                Ok(task) if task.id != id => problems.push(format!(
                    "{name} task under key `{id}` says its id is `{}`",
                    task.id
                )),
                Ok(task) if running.contains(&(topic, task.id.as_str())) => {}
                Ok(task) => match task.state {
                    TaskState::Done => done += 1,
                    TaskState::Dead => dead += 1,
                    // Layout 1 kept unfinished tasks here; converted at open.
                    _ => notes.push(format!(
                        "{name} task `{id}` is {} in the first layout; the daemon converts it when it next starts",
                        task.state.name()
                    )),
                },
            }
        }
        for (state, n) in [(TaskState::Done, done), (TaskState::Dead, dead)] {
            let counted = match counts.get(&topic) {
                Some(&(done, dead)) => {
                    if state == TaskState::Done {
                        done
                    } else {
                        dead
                    }
                }
                None => tree
                    .get(prefixed(COUNT, topic, state.name().as_bytes()))?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map_or(0, u64::from_be_bytes),
            };
            if counted != n {
                notes.push(format!(
                    "{name}: {n} {} tasks stored but {counted} counted",
                    state.name()
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue in a fresh store; the store's directory lives as long as it.
    fn queue() -> (tempfile::TempDir, EventStore, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let q = Queue::open(&store).unwrap();
        (dir, store, q)
    }

    /// The process stops (its queue and store closed) and starts again.
    async fn reopen(q: Queue, store: EventStore, dir: &tempfile::TempDir) -> (Queue, EventStore) {
        drop(q);
        store.close().await.unwrap();
        let store = EventStore::reopen(dir.path()).await.unwrap();
        (Queue::open(&store).unwrap(), store)
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

    fn ids_of(tasks: &[Task]) -> Vec<&str> {
        tasks.iter().map(|t| t.id.as_str()).collect()
    }

    fn ids(leases: &[Lease]) -> Vec<&str> {
        leases.iter().map(|l| l.id.as_str()).collect()
    }

    async fn lease(q: &Queue, topic: Topic, now: u64, lease_ms: u64, max: usize) -> Vec<Lease> {
        q.lease(topic, now, lease_ms, max)
            .unwrap()
            .durable()
            .await
            .unwrap()
    }

    async fn verify_clean(store: &EventStore) {
        store.sync().await.unwrap();
        let (journaled, _) = crate::journal::read_dir(&store.dir().join("journal")).unwrap();
        let mut notes = Vec::new();
        let problems = verify(store.db(), &journaled, &mut notes).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[tokio::test]
    async fn publishing_the_same_id_twice_queues_it_once() {
        let (_d, _s, q) = queue();
        assert_eq!(q.publish(&[job("a"), job("a")], 10).unwrap(), 1);
        assert_eq!(q.publish(&[job("a")], 10).unwrap(), 0);
        assert_eq!(lease(&q, Topic::Jobs, 10, 1000, 10).await.len(), 1);
    }

    #[tokio::test]
    async fn a_task_published_for_later_is_not_due_before_its_time() {
        let (_dir, _store, q) = queue();
        let slot = NewTask::new(Topic::Schedules, "p/reconcile/500", vec![]).due_at(500);
        q.publish(&[slot], 10).unwrap();
        assert!(lease(&q, Topic::Schedules, 499, 1000, 10).await.is_empty());
        assert_eq!(q.next_due(Topic::Schedules).unwrap(), Some(500));
        assert_eq!(lease(&q, Topic::Schedules, 500, 1000, 10).await.len(), 1);
    }

    #[tokio::test]
    async fn a_leased_task_is_invisible_until_its_lease_expires() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let first = lease(&q, Topic::Jobs, 0, 1000, 10).await;
        assert_eq!(first[0].attempt, 1);
        assert!(lease(&q, Topic::Jobs, 999, 1000, 10).await.is_empty());
        let again = lease(&q, Topic::Jobs, 1000, 1000, 10).await;
        assert_eq!(
            again[0].attempt, 2,
            "an expired lease is re-run, never lost"
        );
    }

    #[tokio::test]
    async fn an_acked_task_never_comes_back_and_its_follow_ups_are_queued() {
        let (_d, s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 10).await.remove(0);
        let delivery = NewTask::new(Topic::Deliveries, "a.0", vec![]);
        q.ack(&l, "delivered 1", &[delivery], 5).unwrap();
        assert!(lease(&q, Topic::Jobs, 10_000, 1000, 10).await.is_empty());
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Done
        );
        assert_eq!(lease(&q, Topic::Deliveries, 5, 1000, 10).await.len(), 1);
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn newest_reads_back_a_bounded_number_of_finished_tasks_and_keeps_failures_apart() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a"), job("b"), job("c"), job("d")], 0)
            .unwrap();
        let mut ls = lease(&q, Topic::Jobs, 0, 1000, 10).await.into_iter();
        let settle = |lease: Lease, end: TaskEnd| Settlement { lease, end };
        let retry = |outcome: &str| TaskEnd::Retry {
            outcome: outcome.into(),
            delay_ms: 0,
        };
        let mut next = || ls.next().unwrap();
        q.settle(
            vec![
                settle(next(), retry("503 on a")),
                settle(
                    next(),
                    TaskEnd::Dead {
                        reason: "b is bad".into(),
                    },
                ),
                settle(
                    next(),
                    TaskEnd::Done {
                        outcome: "ok".into(),
                        follow_ups: vec![],
                    },
                ),
                settle(
                    next(),
                    TaskEnd::Dead {
                        reason: "d is bad".into(),
                    },
                ),
            ],
            10,
        )
        .unwrap();
        let a = lease(&q, Topic::Jobs, 20, 1000, 10).await.remove(0);
        q.ack(&a, "ok at last", &[], 30).unwrap();
        q.replay(Topic::Jobs, "d", 40).unwrap();
        let failed = |t: &Task| t.failures().next().is_some();
        // d runs again (unfinished, always read); of the finished, only the
        // newest two (c, b) are examined.
        let newest = q.newest(Topic::Jobs, 2, &failed).unwrap();
        assert_eq!(ids_of(&newest), ["d", "b"]);
        let all = q.newest(Topic::Jobs, 10, &failed).unwrap();
        assert_eq!(ids_of(&all), ["d", "b", "a"]);
        let outcomes = |t: &Task| t.failures().map(|f| f.outcome.clone()).collect::<Vec<_>>();
        assert_eq!(
            outcomes(&all[0]),
            ["d is bad"],
            "a dead end, replayed, still failed"
        );
        assert_eq!(outcomes(&all[2]), ["503 on a"], "not its final success");
    }

    #[tokio::test]
    async fn outcomes_settled_together_each_take_effect() {
        let (_d, s, q) = queue();
        q.publish(&[job("a"), job("b"), job("c"), job("d")], 0)
            .unwrap();
        let mut ls = lease(&q, Topic::Jobs, 0, 1000, 10).await.into_iter();
        let (a, b, c, d) = (
            ls.next().unwrap(),
            ls.next().unwrap(),
            ls.next().unwrap(),
            ls.next().unwrap(),
        );
        let settle = |lease: Lease, end: TaskEnd| Settlement { lease, end };
        q.settle(
            vec![
                settle(
                    a,
                    TaskEnd::Done {
                        outcome: "ok".into(),
                        follow_ups: vec![],
                    },
                ),
                settle(
                    b,
                    TaskEnd::Retry {
                        outcome: "503".into(),
                        delay_ms: 100,
                    },
                ),
                settle(c, TaskEnd::Defer { delay_ms: 50 }),
                settle(
                    d,
                    TaskEnd::Dead {
                        reason: "gave up".into(),
                    },
                ),
            ],
            10,
        )
        .unwrap();
        let state = |id| q.get(Topic::Jobs, id).unwrap().unwrap().state;
        assert_eq!(
            [state("a"), state("b"), state("c"), state("d")],
            [
                TaskState::Done,
                TaskState::Ready,
                TaskState::Ready,
                TaskState::Dead
            ]
        );
        assert_eq!(ids(&lease(&q, Topic::Jobs, 60, 1000, 10).await), ["c"]);
        assert_eq!(ids(&lease(&q, Topic::Jobs, 110, 1000, 10).await), ["b"]);
        let depth = q.depth();
        assert_eq!(depth.get(Topic::Jobs, TaskState::Done), 1);
        assert_eq!(depth.get(Topic::Jobs, TaskState::Dead), 1);
        assert_eq!(depth.get(Topic::Jobs, TaskState::Leased), 2);
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn a_retried_task_comes_due_after_its_delay_with_its_history() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 10).await.remove(0);
        q.retry(&l, 500, "destination answered 503", 100).unwrap();
        assert!(lease(&q, Topic::Jobs, 599, 1000, 10).await.is_empty());
        assert_eq!(lease(&q, Topic::Jobs, 600, 1000, 10).await.len(), 1);
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.history[0].outcome, "destination answered 503");
    }

    #[tokio::test]
    async fn a_deferred_task_comes_back_without_spending_an_attempt() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 10).await.remove(0);
        q.defer(&l, 50, 0).unwrap();
        let again = lease(&q, Topic::Jobs, 50, 1000, 10).await.remove(0);
        assert_eq!(again.attempt, 1);
        assert!(q.get(Topic::Jobs, "a").unwrap().unwrap().history.is_empty());
    }

    #[tokio::test]
    async fn a_dead_lettered_task_keeps_its_reason_and_replay_runs_it_again() {
        let (_d, s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 10).await.remove(0);
        q.dead_letter(&l, "plugin trapped", 1).unwrap();
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.state, TaskState::Dead);
        assert_eq!(task.history.last().unwrap().outcome, "plugin trapped");
        assert!(
            lease(&q, Topic::Jobs, u64::MAX / 2, 1000, 10)
                .await
                .is_empty()
        );
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Dead), 1);

        assert!(q.replay(Topic::Jobs, "a", 2).unwrap());
        assert!(
            !q.replay(Topic::Jobs, "a", 2).unwrap(),
            "only finished tasks replay"
        );
        let again = lease(&q, Topic::Jobs, 2, 1000, 10).await.remove(0);
        assert_eq!(again.attempt, 1, "a replay starts a fresh attempt count");
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Dead), 0);
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn a_replayed_job_queues_its_finished_follow_ups_again() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let d = NewTask::new(Topic::Deliveries, "a.0", vec![]);
        let l = lease(&q, Topic::Jobs, 0, 1000, 1).await.remove(0);
        q.ack(&l, "ok", std::slice::from_ref(&d), 0).unwrap();
        let dl = lease(&q, Topic::Deliveries, 0, 1000, 1).await.remove(0);
        q.ack(&dl, "delivered", &[], 0).unwrap();
        q.replay(Topic::Jobs, "a", 1).unwrap();
        let l = lease(&q, Topic::Jobs, 1, 1000, 1).await.remove(0);
        q.ack(&l, "ok", &[d], 1).unwrap();
        assert_eq!(
            ids(&lease(&q, Topic::Deliveries, 1, 1000, 1).await),
            ["a.0"]
        );
        let history = q.get(Topic::Deliveries, "a.0").unwrap().unwrap().history;
        assert_eq!(history[0].outcome, "delivered");
        assert_eq!(
            history[1].outcome,
            "queued again by a replayed job (was done)"
        );
        let delivery = q.get(Topic::Deliveries, "a.0").unwrap().unwrap();
        assert_eq!(delivery.failures().count(), 0, "a done delivery, run again");
    }

    #[tokio::test]
    async fn a_stale_lease_cannot_finish_a_task_that_was_leased_again() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let old = lease(&q, Topic::Jobs, 0, 10, 10).await.remove(0);
        let new = lease(&q, Topic::Jobs, 10, 1000, 10).await.remove(0);
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

    #[tokio::test]
    async fn an_attempt_under_way_when_the_daemon_stops_is_in_the_history_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EventStore::open(dir.path()).unwrap();
            let q = Queue::open(&store).unwrap();
            q.publish(&[job("a")], 0).unwrap();
            // Leased, never settled: the process "dies" here.
            lease(&q, Topic::Jobs, 0, 60_000, 10).await;
            drop(q);
            store.close().await.unwrap();
        }
        let store = EventStore::reopen(dir.path()).await.unwrap();
        let q = Queue::open(&store).unwrap();
        assert_eq!(q.recover(5).unwrap(), 1);
        let again = lease(&q, Topic::Jobs, 5, 1000, 10).await.remove(0);
        assert_eq!(again.attempt, 2);
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(
            task.history[0].outcome,
            "interrupted: the daemon stopped during this attempt"
        );
        verify_clean(&store).await;
    }

    #[tokio::test]
    async fn reopening_reads_unfinished_work_and_counts_the_finished() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EventStore::open(dir.path()).unwrap();
            let q = Queue::open(&store).unwrap();
            q.publish(
                &[job("a"), job("b"), ordered("c", "k"), ordered("d", "k")],
                0,
            )
            .unwrap();
            for l in lease(&q, Topic::Jobs, 0, 1000, 2).await {
                q.ack(&l, "ok", &[], 0).unwrap();
            }
            drop(q);
            store.close().await.unwrap();
        }
        let store = EventStore::reopen(dir.path()).await.unwrap();
        let q = Queue::open(&store).unwrap();
        let depth = q.depth();
        assert_eq!(depth.get(Topic::Jobs, TaskState::Done), 2);
        assert_eq!(depth.get(Topic::Jobs, TaskState::Ready), 2);
        assert_eq!(
            ids(&lease(&q, Topic::Jobs, 1, 1000, 10).await),
            ["c"],
            "the order list is rebuilt: d waits for c"
        );
    }

    #[tokio::test]
    async fn ordered_tasks_run_one_at_a_time_per_key_without_blocking_other_keys() {
        let (_d, s, q) = queue();
        q.publish(
            &[ordered("1", "x"), ordered("2", "x"), ordered("3", "y")],
            0,
        )
        .unwrap();
        let first = lease(&q, Topic::Jobs, 0, 1000, 10).await;
        assert_eq!(
            ids(&first),
            ["1", "3"],
            "only the head of x, and y alongside"
        );
        verify_clean(&s).await;
        // A retry keeps its place: 2 still waits.
        q.retry(&first[0], 10, "503", 0).unwrap();
        assert!(lease(&q, Topic::Jobs, 5, 1000, 10).await.is_empty());
        let again = lease(&q, Topic::Jobs, 10, 1000, 10).await.remove(0);
        assert_eq!(again.id, "1");
        q.dead_letter(&again, "gave up", 11).unwrap();
        assert_eq!(
            ids(&lease(&q, Topic::Jobs, 11, 1000, 10).await),
            ["2"],
            "a dead head lets the next run"
        );
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn a_burst_coalesces_into_one_waiting_task_until_it_is_leased() {
        let (_d, s, q) = queue();
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
            lease(&q, Topic::Jobs, 120, 1000, 10).await.is_empty(),
            "the window restarted at 50"
        );
        let l = lease(&q, Topic::Jobs, 150, 1000, 10).await.remove(0);
        assert_eq!((l.id.as_str(), l.payload.as_slice()), ("a", &[2u8][..]));
        // Leased: the next event starts a new burst.
        assert_eq!(
            q.coalesce(&t("c"), "k", 100, 160, &count).unwrap(),
            Coalesced::Published("c".into())
        );
        q.ack(&l, "ok", &[], 170).unwrap();
        assert_eq!(
            q.coalesce(&t("d"), "k", 100, 180, &count).unwrap(),
            Coalesced::Merged("c".into()),
            "finishing the old burst leaves the new one open"
        );
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn done_tasks_before_a_cut_off_are_purged_and_others_kept() {
        let (_d, s, q) = queue();
        q.publish(&[job("a1"), job("a2"), job("b1")], 0).unwrap();
        for l in lease(&q, Topic::Jobs, 0, 1000, 2).await {
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
        verify_clean(&s).await;
    }

    #[tokio::test]
    async fn listing_merges_finished_and_unfinished_tasks_in_id_order() {
        let (_d, _s, q) = queue();
        q.publish(&[job("a"), job("b"), job("c")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 2).await;
        q.ack(&l[1], "ok", &[], 0).unwrap();
        let all: Vec<String> = q
            .tasks(Topic::Jobs)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(all, ["a", "b", "c"]);
        let after_a: Vec<String> = q
            .list(Topic::Jobs, Some("a"), 1, &|_| true)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(after_a, ["b"]);
        assert_eq!(
            q.with_prefix(Topic::Jobs, "b").unwrap()[0].state,
            TaskState::Done
        );
    }

    #[tokio::test]
    async fn a_queue_in_the_first_layout_is_converted_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("queue").unwrap();
            let task = |id: &str, state| Task {
                id: id.into(),
                state,
                attempts: 1,
                due_ms: 7,
                created_ms: 1,
                payload: vec![],
                history: vec![],
                order_key: None,
                coalesce_key: None,
            };
            for (id, state) in [
                ("a", TaskState::Ready),
                ("b", TaskState::Done),
                ("c", TaskState::Dead),
            ] {
                tree.insert(
                    prefixed(FINISHED, Topic::Jobs, id.as_bytes()),
                    encode(&task(id, state)),
                )
                .unwrap();
            }
            let mut due = prefixed(b'r', Topic::Jobs, &7u64.to_be_bytes());
            due.extend_from_slice(b"a");
            tree.insert(due, &[][..]).unwrap();
            db.flush().unwrap();
        }
        let store = EventStore::open(dir.path()).unwrap();
        let q = Queue::open(&store).unwrap();
        let depth = q.depth();
        assert_eq!(depth.get(Topic::Jobs, TaskState::Ready), 1);
        assert_eq!(depth.get(Topic::Jobs, TaskState::Done), 1);
        assert_eq!(depth.get(Topic::Jobs, TaskState::Dead), 1);
        assert_eq!(ids(&lease(&q, Topic::Jobs, 7, 1000, 10).await), ["a"]);
        verify_clean(&store).await;
    }

    #[tokio::test]
    async fn a_task_the_journal_holds_unfinished_runs_again_whatever_the_history_says() {
        let (_d, store, q) = queue();
        q.publish(&[job("a"), job("b")], 7).unwrap();
        q.sync().await.unwrap();
        // sled reached the disk with a finish whose journal records did
        // not (a crash before the journal's sync): nothing was promised
        // about it, so the task runs again.
        let tree = store.db().open_tree("queue").unwrap();
        let mut done = q.get(Topic::Jobs, "a").unwrap().unwrap();
        done.state = TaskState::Done;
        done.history.push(Attempt {
            at_ms: 8,
            outcome: "ok".into(),
        });
        tree.insert(prefixed(FINISHED, Topic::Jobs, b"a"), encode(&done))
            .unwrap();
        drop(tree);
        let (q, store) = reopen(q, store, &_d).await;
        let a = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(a.state, TaskState::Ready);
        assert!(a.history.is_empty());
        // Listed once, as it runs now.
        let listed = q.tasks(Topic::Jobs).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|t| (t.id.as_str(), t.state))
                .collect::<Vec<_>>(),
            [("a", TaskState::Ready), ("b", TaskState::Ready)]
        );
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Done), 0);
        let leases = lease(&q, Topic::Jobs, 7, 1000, 10).await;
        assert_eq!(ids(&leases), ["a", "b"]);
        for l in &leases {
            q.ack(l, "ok", &[], 9).unwrap();
        }
        assert_eq!(q.depth().get(Topic::Jobs, TaskState::Done), 2);
        verify_clean(&store).await;
    }

    #[tokio::test]
    async fn a_finished_task_whose_history_record_was_lost_is_written_again_at_open() {
        let (_d, store, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 1).await.remove(0);
        q.ack(&l, "ok", &[], 1).unwrap();
        q.sync().await.unwrap();
        // The journal has the finish; the history write never reached the disk.
        let tree = store.db().open_tree("queue").unwrap();
        tree.remove(prefixed(FINISHED, Topic::Jobs, b"a")).unwrap();
        drop(tree);
        let (q, _store) = reopen(q, store, &_d).await;
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(task.state, TaskState::Done);
        assert_eq!(task.history.last().unwrap().outcome, "ok");
    }

    #[tokio::test]
    async fn a_checkpoint_bounds_what_opening_reads_and_loses_nothing() {
        let (_d, store, q) = queue();
        q.publish(&[job("a"), ordered("b", "k"), ordered("c", "k")], 0)
            .unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 1).await.remove(0);
        q.retry(&l, 5, "503", 0).unwrap();
        // The first checkpoint after opening is always taken.
        assert!(q.checkpoint().await.unwrap());
        assert!(!q.checkpoint().await.unwrap(), "nothing changed since");
        q.publish(&[job("d")], 1).unwrap();
        q.sync().await.unwrap();
        let journals = std::fs::read_dir(_d.path().join("journal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("journal-")
            })
            .count();
        assert_eq!(journals, 1, "older journals are gone");
        let (q, _store) = reopen(q, store, &_d).await;
        let a = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!((a.state, a.history.len()), (TaskState::Ready, 1));
        assert_eq!(
            ids(&lease(&q, Topic::Jobs, 10, 1000, 10).await),
            ["b", "d", "a"],
            "in due order: a was retried to 5"
        );
    }

    #[tokio::test]
    async fn a_checkpoint_that_cannot_start_a_journal_fails_loses_nothing_and_is_tried_again() {
        let (d, store, q) = queue();
        q.publish(&[job("a")], 0).unwrap();
        q.sync().await.unwrap();
        let dir = d.path().join("journal");
        let newest = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_prefix("journal-")?
                    .strip_suffix(".log")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap();
        // Where the next journal would go, something that is not a file.
        let blocker = dir.join(format!("journal-{:010}.log", newest + 1));
        std::fs::create_dir(&blocker).unwrap();
        assert!(q.checkpoint().await.is_err());
        q.publish(&[job("b")], 1).unwrap();
        q.sync().await.expect("the task log still writes");
        std::fs::remove_dir(&blocker).unwrap();
        assert!(q.checkpoint().await.unwrap(), "tried again");
        let (q, _store) = reopen(q, store, &d).await;
        assert_eq!(ids(&lease(&q, Topic::Jobs, 10, 1000, 10).await), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_backup_holds_the_unfinished_work_and_what_finished() {
        let (d, _store, q) = queue();
        q.publish(&[job("a"), job("b"), job("c")], 0).unwrap();
        let l = lease(&q, Topic::Jobs, 0, 1000, 1).await.remove(0);
        q.ack(&l, "ok", &[], 0).unwrap();
        assert!(q.checkpoint().await.unwrap());
        // After the checkpoint: only in the journal so far.
        q.publish(&[job("d")], 1).unwrap();
        q.sync().await.unwrap();
        let dest = d.path().join("backup");
        _store.backup(&dest).await.unwrap();

        let copy = EventStore::open(&dest.join("db")).unwrap();
        let q = Queue::open(&copy).unwrap();
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Done
        );
        assert_eq!(
            ids(&lease(&q, Topic::Jobs, 10, 1000, 10).await),
            ["b", "c", "d"],
            "the unfinished work, the journal's included"
        );
    }

    #[tokio::test]
    async fn purging_within_a_prefix_leaves_other_prefixes_alone() {
        let (_d, _store, q) = queue();
        let slot = |id: &str| NewTask::new(Topic::Schedules, id, vec![]).due_at(0);
        q.publish(&[slot("a/s/1"), slot("a/s/2"), slot("b/s/1")], 0)
            .unwrap();
        for l in lease(&q, Topic::Schedules, 0, 1000, 10).await {
            q.ack(&l, "ran", &[], 0).unwrap();
        }
        // Only `a/s/`'s done slots before `a/s/2`.
        assert_eq!(
            q.purge_done_in(Topic::Schedules, "a/s/", "a/s/2", 100)
                .unwrap(),
            1
        );
        assert!(q.get(Topic::Schedules, "a/s/1").unwrap().is_none());
        assert!(q.get(Topic::Schedules, "a/s/2").unwrap().is_some());
        assert!(q.get(Topic::Schedules, "b/s/1").unwrap().is_some());
        // A prefix that sorts after `before` is an empty range, not an error.
        assert_eq!(
            q.purge_done_in(Topic::Schedules, "b/s/", "a/s/9", 100)
                .unwrap(),
            0
        );
        assert!(q.get(Topic::Schedules, "b/s/1").unwrap().is_some());
    }
}
