//! The embedded [`TaskLog`]: the index in memory, every change a sled batch.
//!
//! Keys in the `queue` tree (topic is `jobs` or `deliveries`):
//!
//! | key                         | value                                     |
//! |-----------------------------|-------------------------------------------|
//! | `u` topic `\0` id           | an unfinished (ready or leased) [`Task`]  |
//! | `t` topic `\0` id           | a finished (done or dead) [`Task`]        |
//! | `n` topic `\0` state        | how many finished tasks are in that state |
//! | `v`                         | layout version                            |
//!
//! Opening reads the unfinished tasks and the counters only: start-up does
//! not grow with finished history. The index (what is due when, order lists,
//! coalescing bursts) lives in memory and is rebuilt from the `u` records.
//!
//! One mutex orders every change: memory and sled change together, so the
//! order of writes on disk is the order of the steps. A lease's batch is
//! synced before the lease is handed out; that sync also covers every
//! settlement written before it, so nothing leased can overtake the step
//! that queued it.
//!
//! Layout 1 (one `t` record per task in any state, plus `r` due, `o` order
//! and `c` coalesce entries) is converted once, when first opened.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use super::{
    Attempt, Coalesced, Depth, Lease, NewTask, QueueError, Settlement, Task, TaskEnd, TaskLog,
    TaskState, Topic,
};
use crate::EventStore;

/// Layout version written under `v`.
const LAYOUT: u8 = 2;
const VERSION_KEY: &[u8] = b"v";

const UNFINISHED: u8 = b'u';
const FINISHED: u8 = b't';
const COUNT: u8 = b'n';

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

/// What the index knows of an unfinished task; the record itself is on
/// disk, except while it is leased.
#[derive(Debug)]
struct Meta {
    state: TaskState,
    attempts: u32,
    due_ms: u64,
    order_key: Option<String>,
    coalesce_key: Option<String>,
    /// The record, kept while leased so settling it reads nothing.
    leased: Option<Task>,
}

#[derive(Debug, Default)]
struct TopicIndex {
    live: HashMap<Arc<str>, Meta>,
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
}

#[derive(Debug, Default)]
struct Index {
    topics: [TopicIndex; 2],
}

impl Index {
    fn topic(&mut self, topic: Topic) -> &mut TopicIndex {
        match topic {
            Topic::Jobs => &mut self.topics[0],
            Topic::Deliveries => &mut self.topics[1],
        }
    }
}

/// One step's writes, in the order they must reach the disk.
///
/// They are plain sled writes, not a sled batch: sled 0.34 writes out and
/// syncs a log buffer for every batch, which at thousands of steps a second
/// cost more than everything else. sled recovers a prefix of its writes, so
/// a crash can cut a step short but never reorder it, and every step is
/// ordered to leave something the next open repairs:
/// - finishing writes the finished record before removing the unfinished
///   one (a task found both ways is whichever has the longer history);
/// - a job's follow-ups are published before the job is finished (a job cut
///   short runs again and publishes nothing twice);
/// - a replay writes the unfinished record before removing the finished one.
///
/// Durability is the store's: its committer flushes and fsyncs everything
/// written so far, and [`TaskLog::lease`] waits for that.
struct Step<'a> {
    tree: &'a sled::Tree,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    counts: Vec<Topic>,
}

impl<'a> Step<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            writes: Vec::new(),
            counts: Vec::new(),
        }
    }

    fn put_unfinished(&mut self, topic: Topic, task: &Task) {
        self.writes.push((
            prefixed(UNFINISHED, topic, task.id.as_bytes()),
            Some(encode(task)),
        ));
    }

    fn put_finished(&mut self, topic: Topic, task: &Task) {
        self.writes.push((
            prefixed(FINISHED, topic, task.id.as_bytes()),
            Some(encode(task)),
        ));
        self.writes
            .push((prefixed(UNFINISHED, topic, task.id.as_bytes()), None));
        self.count(topic);
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    fn count(&mut self, topic: Topic) {
        if !self.counts.contains(&topic) {
            self.counts.push(topic);
        }
    }

    fn apply(self, index: &mut Index) -> Result<(), QueueError> {
        for (k, v) in self.writes {
            match v {
                Some(v) => self.tree.insert(k, v)?,
                None => self.tree.remove(k)?,
            };
        }
        for topic in self.counts {
            let t = index.topic(topic);
            for (state, n) in [(TaskState::Done, t.done), (TaskState::Dead, t.dead)] {
                self.tree.insert(
                    prefixed(COUNT, topic, state.name().as_bytes()),
                    &n.to_be_bytes()[..],
                )?;
            }
        }
        Ok(())
    }
}

/// The sled-backed [`TaskLog`].
#[derive(Clone)]
pub struct Queue {
    tree: sled::Tree,
    index: Arc<Mutex<Index>>,
    store: EventStore,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens the queue in the store's database: reads the unfinished tasks
    /// and the counters, converting an older layout first.
    pub fn open(store: &EventStore) -> Result<Self, QueueError> {
        let tree = store.db().open_tree("queue")?;
        if tree.get(VERSION_KEY)?.is_none() {
            migrate_layout_1(&tree)?;
        }
        let mut index = Index::default();
        for topic in Topic::ALL {
            let t = index.topic(topic);
            let mut tasks = Vec::new();
            for item in tree.scan_prefix(prefixed(UNFINISHED, topic, b"")) {
                let (k, v) = item?;
                let task = decode(&k, &v)?;
                if let Some(task) = repair(&tree, topic, task)? {
                    tasks.push(task);
                }
            }
            // Order lists are rebuilt in publish order: ids sort by event.
            tasks.sort_by(|a, b| a.id.cmp(&b.id));
            for task in tasks {
                let id: Arc<str> = task.id.as_str().into();
                t.live.insert(
                    id.clone(),
                    Meta {
                        state: task.state,
                        attempts: task.attempts,
                        due_ms: task.due_ms,
                        order_key: task.order_key.clone(),
                        coalesce_key: task.coalesce_key.clone(),
                        leased: (task.state == TaskState::Leased).then(|| task.clone()),
                    },
                );
                if let Some(key) = &task.coalesce_key {
                    // In id order: the newest task of a key is the one a
                    // burst merges into (while it is ready).
                    t.coalescing.insert(key.clone(), id.clone());
                }
                enqueue(t, &id, task.due_ms);
            }
            for state in [TaskState::Done, TaskState::Dead] {
                let n = tree
                    .get(prefixed(COUNT, topic, state.name().as_bytes()))?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map_or(0, u64::from_be_bytes);
                *t.finished(state) = n;
            }
        }
        Ok(Self {
            tree,
            index: Arc::new(Mutex::new(index)),
            store: store.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves memory and disk as far as
        // the last applied batch: still consistent, so carry on.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_unfinished(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        let key = prefixed(UNFINISHED, topic, id.as_bytes());
        self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()
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
        let mut rerun = Vec::new();
        for new in tasks {
            let t = index.topic(new.topic);
            if t.live.contains_key(new.id.as_str()) {
                continue;
            }
            let mut task = match self.read_finished(new.topic, &new.id)? {
                Some(old) if rerun_finished => {
                    *t.finished(old.state) = t.finished(old.state).saturating_sub(1);
                    step.count(new.topic);
                    // Removed after the new record is written, below.
                    rerun.push(prefixed(FINISHED, new.topic, new.id.as_bytes()));
                    let mut history = old.history;
                    history.push(Attempt {
                        at_ms: now_ms,
                        outcome: "queued again by a replayed job".into(),
                    });
                    Task {
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
                    due_ms: now_ms,
                    created_ms: now_ms,
                    payload: new.payload.clone(),
                    history: Vec::new(),
                    order_key: new.order_key.clone(),
                    coalesce_key: None,
                },
            };
            task.state = TaskState::Ready;
            task.due_ms = now_ms;
            step.put_unfinished(new.topic, &task);
            let id: Arc<str> = task.id.as_str().into();
            t.live.insert(id.clone(), meta_of(&task));
            enqueue(t, &id, now_ms);
            added += 1;
        }
        for key in rerun {
            step.remove(key);
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
        let Some(meta) = t.live.get_mut(&id) else {
            return Ok(());
        };
        // A lease that expired and was taken again belongs to the newer attempt.
        if meta.state != TaskState::Leased || meta.attempts != s.lease.attempt {
            return Ok(());
        }
        let mut task = match meta.leased.take() {
            Some(task) => task,
            None => match self.read_unfinished(topic, &id)? {
                Some(task) => task,
                None => return Ok(()),
            },
        };
        t.due.remove(&(meta.due_ms, id.clone()));
        match s.end {
            TaskEnd::Retry { outcome, delay_ms } => {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome,
                });
                ready_again(t, step, topic, &id, task, now_ms.saturating_add(delay_ms));
            }
            TaskEnd::Defer { delay_ms } => {
                task.attempts = task.attempts.saturating_sub(1);
                ready_again(t, step, topic, &id, task, now_ms.saturating_add(delay_ms));
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
                finish(index.topic(topic), step, topic, &id, &task, now_ms);
            }
            TaskEnd::Dead { reason } => {
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome: reason,
                });
                task.state = TaskState::Dead;
                finish(t, step, topic, &id, &task, now_ms);
            }
        }
        Ok(())
    }
}

/// A task stored both unfinished and finished was cut short by a crash
/// while finishing or replaying ([`Step`]): the record with the longer
/// history is the later one. Returns the task when it is unfinished.
fn repair(tree: &sled::Tree, topic: Topic, task: Task) -> Result<Option<Task>, QueueError> {
    let finished_key = prefixed(FINISHED, topic, task.id.as_bytes());
    let Some(v) = tree.get(&finished_key)? else {
        return Ok(Some(task));
    };
    let finished = decode(&finished_key, &v)?;
    if finished.history.len() >= task.history.len() {
        tree.remove(prefixed(UNFINISHED, topic, task.id.as_bytes()))?;
        Ok(None)
    } else {
        tree.remove(finished_key)?;
        Ok(Some(task))
    }
}

fn meta_of(task: &Task) -> Meta {
    Meta {
        state: task.state,
        attempts: task.attempts,
        due_ms: task.due_ms,
        order_key: task.order_key.clone(),
        coalesce_key: task.coalesce_key.clone(),
        leased: None,
    }
}

/// Makes an unfinished task eligible at `due_ms`: it joins its order list
/// (due only when it is the head), else gets a due entry.
fn enqueue(t: &mut TopicIndex, id: &Arc<str>, due_ms: u64) {
    let order_key = t.live.get(id).and_then(|m| m.order_key.clone());
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
fn ready_again(
    t: &mut TopicIndex,
    step: &mut Step<'_>,
    topic: Topic,
    id: &Arc<str>,
    mut task: Task,
    due_ms: u64,
) {
    task.state = TaskState::Ready;
    task.due_ms = due_ms;
    step.put_unfinished(topic, &task);
    if let Some(meta) = t.live.get_mut(id) {
        meta.state = TaskState::Ready;
        meta.attempts = task.attempts;
        meta.due_ms = due_ms;
    }
    t.due.insert((due_ms, id.clone()));
}

/// A task is done or dead: out of the index, its record finished, and the
/// next task of its order list due.
fn finish(
    t: &mut TopicIndex,
    step: &mut Step<'_>,
    topic: Topic,
    id: &Arc<str>,
    task: &Task,
    now_ms: u64,
) {
    step.put_finished(topic, task);
    *t.finished(task.state) = t.finished(task.state).saturating_add(1);
    let Some(meta) = t.live.remove(id) else {
        return;
    };
    if let Some(key) = &meta.coalesce_key
        && t.coalescing.get(key) == Some(id)
    {
        t.coalescing.remove(key);
    }
    let Some(key) = &meta.order_key else {
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
        && let Some(m) = t.live.get_mut(&next)
    {
        m.due_ms = m.due_ms.max(now_ms);
        t.due.insert((m.due_ms, next));
    }
}

impl TaskLog for Queue {
    fn publish(&self, tasks: &[NewTask], now_ms: u64) -> Result<usize, QueueError> {
        let mut index = self.lock();
        let mut step = Step::new(&self.tree);
        let added = self.publish_in(&mut index, &mut step, tasks, now_ms, false)?;
        step.apply(&mut index)?;
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
            && let Some(meta) = t.live.get_mut(&id)
            && meta.state == TaskState::Ready
            && let Some(mut task) = self.read_unfinished(topic, &id)?
        {
            task.payload = merge(&task.payload);
            let had_due = t.due.remove(&(meta.due_ms, id.clone()));
            meta.due_ms = due_ms;
            task.due_ms = due_ms;
            if had_due {
                t.due.insert((due_ms, id.clone()));
            }
            step.put_unfinished(topic, &task);
            step.apply(&mut index)?;
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
        step.put_unfinished(topic, &task);
        let id: Arc<str> = task.id.as_str().into();
        t.live.insert(id.clone(), meta_of(&task));
        t.coalescing.insert(key.to_owned(), id.clone());
        enqueue(t, &id, due_ms);
        step.apply(&mut index)?;
        Ok(Coalesced::Published(new.id.clone()))
    }

    fn lease(
        &self,
        topic: Topic,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<Lease>, QueueError>> {
        Box::pin(async move {
            let leases = {
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
                    let Some(meta) = t.live.get_mut(&id) else {
                        continue;
                    };
                    let task = match meta.leased.take() {
                        // An expired lease, taken again.
                        Some(task) => Some(task),
                        None => self.read_unfinished(topic, &id)?,
                    };
                    let Some(mut task) = task else {
                        continue;
                    };
                    task.state = TaskState::Leased;
                    task.attempts = task.attempts.saturating_add(1);
                    task.due_ms = now_ms.saturating_add(lease_ms);
                    meta.state = TaskState::Leased;
                    meta.attempts = task.attempts;
                    meta.due_ms = task.due_ms;
                    step.put_unfinished(topic, &task);
                    t.due.insert((task.due_ms, id.clone()));
                    leases.push(Lease {
                        topic,
                        id: task.id.clone(),
                        attempt: task.attempts,
                        created_ms: task.created_ms,
                        payload: task.payload.clone(),
                    });
                    meta.leased = Some(task);
                }
                if !leases.is_empty() {
                    step.apply(&mut index)?;
                }
                leases
            };
            if !leases.is_empty() {
                // The attempt is on disk before anyone acts on it.
                self.store.sync().await?;
            }
            Ok(leases)
        })
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
        step.apply(&mut index)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { Ok(self.store.sync().await?) })
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
        step.count(topic);
        task.state = TaskState::Ready;
        task.attempts = 0;
        task.created_ms = now_ms;
        task.due_ms = now_ms;
        task.history.push(Attempt {
            at_ms: now_ms,
            outcome: format!("replayed (was {})", from.name()),
        });
        step.put_unfinished(topic, &task);
        step.remove(prefixed(FINISHED, topic, id.as_bytes()));
        let key: Arc<str> = id.into();
        t.live.insert(key.clone(), meta_of(&task));
        enqueue(t, &key, now_ms);
        step.apply(&mut index)?;
        Ok(true)
    }

    fn get(&self, topic: Topic, id: &str) -> Result<Option<Task>, QueueError> {
        // A task moves from `u` to `t` in one batch, so one of the two
        // reads finds it; look where it is last.
        if let Some(task) = self.read_unfinished(topic, id)? {
            return Ok(Some(task));
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
        let range = |kind: u8| {
            let prefix = prefixed(kind, topic, b"");
            let start = match after {
                Some(a) => {
                    let mut k = prefixed(kind, topic, a.as_bytes());
                    k.push(0);
                    k
                }
                None => prefix.clone(),
            };
            self.tree
                .range(start..)
                .take_while(move |item| !matches!(item, Ok((k, _)) if !k.starts_with(&prefix)))
        };
        let mut out = Vec::new();
        let mut unfinished = range(UNFINISHED).peekable();
        let mut finished = range(FINISHED).peekable();
        // Both scans are in id order past their one-byte prefix: merge them.
        while out.len() < limit {
            let pick_unfinished = match (unfinished.peek(), finished.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((a, _))), Some(Ok((b, _)))) => a[1..] <= b[1..],
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
            };
            let next = if pick_unfinished {
                unfinished.next()
            } else {
                finished.next()
            };
            let Some(item) = next else {
                break;
            };
            let (k, v) = item?;
            let task = decode(&k, &v)?;
            if keep(&task) {
                out.push(task);
            }
        }
        Ok(out)
    }

    fn with_prefix(&self, topic: Topic, prefix: &str) -> Result<Vec<Task>, QueueError> {
        let mut out = Vec::new();
        for kind in [UNFINISHED, FINISHED] {
            for item in self
                .tree
                .scan_prefix(prefixed(kind, topic, prefix.as_bytes()))
            {
                let (k, v) = item?;
                out.push(decode(&k, &v)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn purge_done(&self, topic: Topic, before: &str, limit: usize) -> Result<usize, QueueError> {
        let mut doomed = Vec::new();
        let start = prefixed(FINISHED, topic, b"");
        let end = prefixed(FINISHED, topic, before.as_bytes());
        for item in self.tree.range(start..end) {
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
        let mut step = Step::new(&self.tree);
        let mut purged = 0u64;
        for k in doomed {
            // Only if it is still done (not replayed meanwhile).
            if self
                .tree
                .get(&k)?
                .is_some_and(|v| decode(&k, &v).is_ok_and(|t| t.state == TaskState::Done))
            {
                step.remove(k.to_vec());
                purged += 1;
            }
        }
        let t = index.topic(topic);
        t.done = t.done.saturating_sub(purged);
        step.count(topic);
        step.apply(&mut index)?;
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
                .filter(|(_, m)| m.state == TaskState::Leased)
                .map(|(id, _)| id.clone())
                .collect();
            for id in leased {
                let Some(meta) = t.live.get_mut(&id) else {
                    continue;
                };
                let task = match meta.leased.take() {
                    Some(task) => Some(task),
                    None => self.read_unfinished(topic, &id)?,
                };
                let Some(mut task) = task else {
                    continue;
                };
                t.due.remove(&(meta.due_ms, id.clone()));
                task.history.push(Attempt {
                    at_ms: now_ms,
                    outcome: "interrupted: the daemon stopped during this attempt".into(),
                });
                ready_again(t, &mut step, topic, &id, task, now_ms);
                recovered += 1;
            }
        }
        step.apply(&mut index)?;
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
                .filter(|m| m.state == TaskState::Leased)
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
/// entries) to this one: unfinished tasks move to `u`, the index entries go,
/// finished tasks are counted.
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
    batch.insert(VERSION_KEY, &[LAYOUT][..]);
    tree.apply_batch(batch)?;
    Ok(())
}

/// Checks the queue tree's invariants without changing anything; returns
/// one line per problem found. Finished counts that differ from the
/// records are not a problem (a crash between a step and its count leaves
/// them off by that step; they only feed metrics): they are in `notes`.
pub(crate) fn verify(db: &sled::Db, notes: &mut Vec<String>) -> Result<Vec<String>, QueueError> {
    let tree = db.open_tree("queue")?;
    let mut problems = Vec::new();
    if tree.get(VERSION_KEY)?.is_none() && tree.iter().next().is_some() {
        problems
            .push("the queue is in layout 1; the daemon converts it when it next starts".into());
        return Ok(problems);
    }
    for topic in Topic::ALL {
        let name = topic.name();
        let mut unfinished = std::collections::HashSet::new();
        for (kind, finished) in [(UNFINISHED, false), (FINISHED, true)] {
            let prefix = prefixed(kind, topic, b"");
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
                    Ok(task) if task.state.is_finished() != finished => problems.push(format!(
                        "{name} task `{id}` is {} but stored as {}",
                        task.state.name(),
                        if finished { "finished" } else { "unfinished" }
                    )),
                    Ok(task) => {
                        match task.state {
                            TaskState::Done => done += 1,
                            TaskState::Dead => dead += 1,
                            _ => {}
                        }
                        if finished && unfinished.contains(&id) {
                            notes.push(format!(
                                "{name} task `{id}` is stored both finished and unfinished (a step cut short by a crash; the daemon repairs it when it next starts)"
                            ));
                        } else if !finished {
                            unfinished.insert(id);
                        }
                    }
                }
            }
            if finished {
                for (state, n) in [(TaskState::Done, done), (TaskState::Dead, dead)] {
                    let counted = tree
                        .get(prefixed(COUNT, topic, state.name().as_bytes()))?
                        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                        .map_or(0, u64::from_be_bytes);
                    if counted != n {
                        notes.push(format!(
                            "{name}: {n} {} tasks stored but {counted} counted",
                            state.name()
                        ));
                    }
                }
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

    async fn lease(q: &Queue, topic: Topic, now: u64, lease_ms: u64, max: usize) -> Vec<Lease> {
        q.lease(topic, now, lease_ms, max).await.unwrap()
    }

    fn verify_clean(store: &EventStore) {
        let mut notes = Vec::new();
        let problems = verify(store.db(), &mut notes).unwrap();
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
        verify_clean(&s);
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
        verify_clean(&s);
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
        verify_clean(&s);
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
        assert_eq!(history[1].outcome, "queued again by a replayed job");
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
        let store = EventStore::open(dir.path()).unwrap();
        let q = Queue::open(&store).unwrap();
        assert_eq!(q.recover(5).unwrap(), 1);
        let again = lease(&q, Topic::Jobs, 5, 1000, 10).await.remove(0);
        assert_eq!(again.attempt, 2);
        let task = q.get(Topic::Jobs, "a").unwrap().unwrap();
        assert_eq!(
            task.history[0].outcome,
            "interrupted: the daemon stopped during this attempt"
        );
        verify_clean(&store);
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
        let store = EventStore::open(dir.path()).unwrap();
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
        verify_clean(&s);
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
        verify_clean(&s);
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
        verify_clean(&s);
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
        verify_clean(&s);
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
        verify_clean(&store);
    }

    #[tokio::test]
    async fn a_task_left_both_finished_and_unfinished_by_a_crash_is_repaired_at_open() {
        let (_d, store, q) = queue();
        q.publish(&[job("a"), job("b")], 7).unwrap();
        verify_clean(&store);
        let tree = store.db().open_tree("queue").unwrap();
        // `a` was cut short while finishing (its finished record has one
        // more outcome), `b` while being replayed (equal histories).
        let mut done = q.get(Topic::Jobs, "a").unwrap().unwrap();
        done.state = TaskState::Done;
        done.history.push(Attempt {
            at_ms: 8,
            outcome: "ok".into(),
        });
        tree.insert(prefixed(FINISHED, Topic::Jobs, b"a"), encode(&done))
            .unwrap();
        let mut dead = q.get(Topic::Jobs, "b").unwrap().unwrap();
        dead.state = TaskState::Dead;
        tree.insert(prefixed(FINISHED, Topic::Jobs, b"b"), encode(&dead))
            .unwrap();
        let mut notes = Vec::new();
        assert!(verify(store.db(), &mut notes).unwrap().is_empty());
        assert_eq!(
            notes.len(),
            4,
            "two tasks stored twice, two counts off: {notes:?}"
        );
        drop(q);
        let q = Queue::open(&store).unwrap();
        assert_eq!(
            q.get(Topic::Jobs, "a").unwrap().unwrap().state,
            TaskState::Done
        );
        assert_eq!(
            q.get(Topic::Jobs, "b").unwrap().unwrap().state,
            TaskState::Dead,
            "equal histories: the finished record wins"
        );
        assert!(lease(&q, Topic::Jobs, 7, 1000, 10).await.is_empty());
    }
}
