//! Replay: run finished work again, by event, from the dead-letter queue,
//! or by source and time range.
//!
//! Replaying an event re-runs each of its jobs (and, through them, their
//! deliveries) and fans it out again, so a plugin that subscribed since gets
//! a job too. Replaying a dead delivery re-sends just that request.

use serde::{Deserialize, Serialize};

use fieldhook_core::event::event_id_at;
use fieldhook_core::time::now_ms;
use fieldhook_store::queue::{Task, TaskState, Topic};

use crate::{Pipeline, PipelineError};

/// Most tasks one replay request touches.
pub const MAX_REPLAY: usize = 10_000;

/// Which dead-lettered tasks to replay (or list).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DlqFilter {
    /// Only this topic.
    pub topic: Option<Topic>,
    /// Only work of this plugin.
    pub plugin: Option<String>,
    /// Only tasks of events of this source.
    pub source: Option<String>,
    /// Only tasks whose last outcome contains this text.
    pub reason: Option<String>,
    /// Only tasks whose id starts with this (an event id selects its work).
    pub id_prefix: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Events fanned out again.
    pub events: usize,
    /// Jobs queued again.
    pub jobs: usize,
    /// Deliveries queued again.
    pub deliveries: usize,
    /// Ids asked for that are not stored.
    pub missing: Vec<String>,
}

/// One dead-lettered task, for listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `jobs` or `deliveries`.
    pub topic: Topic,
    /// The task.
    pub task: Task,
    /// Its event.
    pub event_id: Option<String>,
    /// Its plugin.
    pub plugin: Option<String>,
    /// The last outcome: why it gave up.
    pub reason: String,
}

impl Pipeline {
    /// Dead-lettered tasks matching `filter`, oldest event first.
    pub fn dead_letters(
        &self,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, PipelineError> {
        let mut out = Vec::new();
        for topic in filter.topic.map_or(Topic::ALL.to_vec(), |t| vec![t]) {
            let tasks = self
                .queue
                .list(topic, None, limit.saturating_sub(out.len()), &|t| {
                    t.state == TaskState::Dead && self.matches(topic, t, filter)
                })?;
            for task in tasks {
                let origin = Pipeline::task_origin(topic, &task.payload);
                out.push(DeadLetter {
                    topic,
                    reason: task
                        .history
                        .last()
                        .map(|a| a.outcome.clone())
                        .unwrap_or_default(),
                    event_id: origin.as_ref().map(|o| o.0.clone()),
                    plugin: origin.map(|o| o.1),
                    task,
                });
            }
        }
        Ok(out)
    }

    fn matches(&self, topic: Topic, task: &Task, f: &DlqFilter) -> bool {
        if f.id_prefix
            .as_deref()
            .is_some_and(|p| !task.id.starts_with(p))
        {
            return false;
        }
        if f.reason
            .as_deref()
            .is_some_and(|r| !task.history.last().is_some_and(|a| a.outcome.contains(r)))
        {
            return false;
        }
        if f.plugin.is_none() && f.source.is_none() {
            return true;
        }
        let Some((event_id, plugin)) = Pipeline::task_origin(topic, &task.payload) else {
            return false;
        };
        if f.plugin.as_deref().is_some_and(|p| p != plugin) {
            return false;
        }
        match f.source.as_deref() {
            None => true,
            Some(s) => self
                .store
                .event(&event_id)
                .ok()
                .flatten()
                .is_some_and(|e| e.source == s),
        }
    }

    /// Replays the dead-lettered tasks matching `filter`.
    pub fn replay_dlq(&self, filter: &DlqFilter) -> Result<ReplayReport, PipelineError> {
        let mut report = ReplayReport::default();
        let now = now_ms();
        for d in self.dead_letters(filter, MAX_REPLAY)? {
            if self.queue.replay(d.topic, &d.task.id, now)? {
                match d.topic {
                    Topic::Jobs => report.jobs += 1,
                    Topic::Deliveries => report.deliveries += 1,
                    // A scheduled run is a plugin job too.
                    Topic::Schedules => report.jobs += 1,
                }
            }
        }
        self.wake();
        Ok(report)
    }

    /// Replays every job of an event and fans it out again.
    pub fn replay_event(&self, event_id: &str) -> Result<ReplayReport, PipelineError> {
        let mut report = ReplayReport::default();
        self.replay_event_into(event_id, &mut report)?;
        self.wake();
        Ok(report)
    }

    fn replay_event_into(
        &self,
        event_id: &str,
        report: &mut ReplayReport,
    ) -> Result<(), PipelineError> {
        if !self.store.contains(event_id)? {
            report.missing.push(event_id.to_owned());
            return Ok(());
        }
        self.queue.requeue(event_id)?;
        report.events += 1;
        let now = now_ms();
        for job in self
            .queue
            .with_prefix(Topic::Jobs, &format!("{event_id}."))?
        {
            if self.queue.replay(Topic::Jobs, &job.id, now)? {
                report.jobs += 1;
            }
        }
        Ok(())
    }

    /// Replays the events of `source` (or every source) received in
    /// `[from_ms, to_ms)`.
    pub fn replay_range(
        &self,
        source: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<ReplayReport, PipelineError> {
        let mut report = ReplayReport::default();
        let ids = self.store.event_ids_between(
            &event_id_at(from_ms),
            &event_id_at(to_ms),
            MAX_REPLAY,
            source,
        )?;
        for id in ids {
            self.replay_event_into(&id, &mut report)?;
        }
        self.wake();
        Ok(report)
    }

    fn wake(&self) {
        self.inbox.notify_one();
        self.jobs.notify_waiters();
        self.deliveries.notify_waiters();
    }
}

/// Parses a time for `--from`/`--to`: RFC 3339 UTC (`2026-11-22T21:00:00Z`),
/// Unix milliseconds, or an age such as `90s`, `15m`, `2h`, `7d` (that long
/// before `now_ms`).
pub fn parse_time(text: &str, now_ms: u64) -> Result<u64, String> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(ms);
    }
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = t[..t.len() - 1].parse::<u64>()
    {
        let per = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => 86_400_000,
        };
        return Ok(now_ms.saturating_sub(n.saturating_mul(per)));
    }
    rfc3339_utc(t).ok_or_else(|| {
        format!("cannot read time `{t}`: use RFC 3339 UTC (2026-11-22T21:00:00Z), Unix ms, or an age like 2h")
    })
}

fn rfc3339_utc(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z').or_else(|| t.strip_suffix("+00:00"))?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (time, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    // Bounded so the day arithmetic below cannot overflow on any input.
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&hh)
        || !(0..=59).contains(&mm)
        || !(0..=60).contains(&ss)
    {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 24 + hh) * 60 + mm) * 60 + ss;
    u64::try_from(total * 1000 + ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_unix_ms_or_an_age() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z", 0), Ok(1000));
        assert_eq!(
            parse_time("2026-11-22T21:00:00.5Z", 0),
            Ok(1_795_381_200_500)
        );
        assert_eq!(parse_time("1795381200500", 0), Ok(1_795_381_200_500));
        assert_eq!(parse_time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert!(parse_time("yesterday", 0).is_err());
    }
}
