//! ServiceTrade reconcile: on its schedule, asks the ServiceTrade job API
//! which jobs changed since the last run and emits one `job.updated` event
//! per change, so a webhook ServiceTrade never delivered still reaches the
//! source's subscribers.
//!
//! - Watermark: kv `watermark:<schedule>`, the newest `updated` (Unix
//!   seconds) emitted so far. The poll asks `updatedAfter=<watermark - 1>`
//!   (one second of overlap, so a change in the watermark's own second is
//!   not missed); what it finds again is a duplicate, not a new event.
//! - Dedupe key `job|<id>|<updated>`: the fieldhook ServiceTrade verifier
//!   keys a webhook's job change the same way (`job|<id>|<timestamp>`), so
//!   a change both bring is stored and processed once.
//! - The watermark moves past a job only after `emit` returned for it (the
//!   event is durable): a run cut short polls the rest again.
//! - Credentials: the `[[http]]` grant names a `servicetrade-session`
//!   credential; the host opens the session and adds its cookie.

use fieldhook_guest::emit::{self, Emitted, NewEvent};
use fieldhook_guest::{Decision, Event, Plugin, PluginError, config, http, kv};
use serde_json::{Value, json};

/// Most pages one run reads. Pages are not in `updated` order, so a run
/// cannot stop part way; past this it fails, saying so.
const MAX_PAGES: u64 = 100;

/// One day back on the first run, unless `first_lookback_secs` says.
const FIRST_LOOKBACK_SECS: u64 = 86_400;

struct Reconcile;

impl Plugin for Reconcile {
    fn handle(_event: Event) -> Result<Decision, PluginError> {
        Ok(Decision::Skip)
    }

    fn scheduled(name: &str) -> Result<Decision, PluginError> {
        let api = config::get("api_base")
            .unwrap_or_else(|| "https://api.servicetrade.com/api".to_owned());
        let mark_key = format!("watermark:{name}");
        let mut watermark = match kv::get_json::<u64>(&mark_key)? {
            Some(w) => w,
            None => now_secs().saturating_sub(lookback()),
        };
        let since = watermark.saturating_sub(1);
        // Every page first: the watermark may only pass a change once all
        // changes before it are emitted, and pages are not in `updated`
        // order.
        let mut jobs = Vec::new();
        let mut page = 1;
        loop {
            let url = match page {
                1 => format!("{api}/job?updatedAfter={since}"),
                n => format!("{api}/job?page={n}&updatedAfter={since}"),
            };
            let answer: Value = http::get(&url)?.error_for_status()?.json()?;
            jobs.extend(changed_jobs(&answer)?);
            let pages = answer["data"]["totalPages"].as_u64().unwrap_or(1);
            if pages > MAX_PAGES {
                return Err(PluginError::fatal(format!(
                    "{pages} pages of job changes since {since}, more than the {MAX_PAGES} one \
                     run reads: run the schedule more often"
                )));
            }
            if page >= pages {
                break;
            }
            page += 1;
        }
        jobs.sort_by_key(|j| j.updated);
        let mut stored = 0;
        for job in &jobs {
            if emit::emit(event_for(job))? == Emitted::Stored {
                stored += 1;
            }
            if job.updated > watermark {
                watermark = job.updated;
                kv::set_json(&mark_key, &watermark, None)?;
            }
        }
        Ok(Decision::drop(format!(
            "{stored} of {} changed jobs new (watermark {watermark})",
            jobs.len()
        )))
    }
}

/// A job as the poll found it.
#[derive(Debug, PartialEq, Eq)]
struct Job {
    id: String,
    updated: u64,
    uri: Option<String>,
}

/// The jobs of a `GET /api/job` answer: `{"data": {"jobs": [{id, updated,
/// uri, ...}]}}`.
fn changed_jobs(answer: &Value) -> Result<Vec<Job>, PluginError> {
    let Some(jobs) = answer["data"]["jobs"].as_array() else {
        return Err(PluginError::fatal("the job API answered without data.jobs"));
    };
    jobs.iter()
        .map(|j| {
            let id = match &j["id"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => return Err(PluginError::fatal("a job without an id")),
            };
            let Some(updated) = j["updated"].as_u64() else {
                return Err(PluginError::fatal(format!(
                    "job {id} has no `updated` time"
                )));
            };
            Ok(Job {
                id,
                updated,
                uri: j["uri"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

/// The event: shaped like a ServiceTrade webhook message with one change,
/// so subscribers read polled and pushed changes alike.
fn event_for(job: &Job) -> NewEvent {
    let key = format!("job|{}|{}", job.id, job.updated);
    let body = json!({
        "messageId": format!("poll:{key}"),
        "timestamp": job.updated.to_string(),
        "data": [{
            "action": "updated",
            "timestamp": job.updated,
            "entity": {"type": "job", "id": job.id, "uri": job.uri},
            "changeset": [],
        }],
    });
    NewEvent::new("job.updated", key)
        .entity("job", job.id.clone())
        .occurred_at(job.updated.to_string())
        .json(&body)
}

fn lookback() -> u64 {
    config::get("first_lookback_secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(FIRST_LOOKBACK_SECS)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fieldhook_guest::export_plugin!(Reconcile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_of_the_answer_is_read_with_its_id_and_change_time() {
        let answer = json!({"data": {"jobs": [
            {"id": 5521, "updated": 1401833052, "uri": "https://api.servicetrade.com/api/job/5521"},
            {"id": "77", "updated": 1401833060}
        ]}});
        let jobs = changed_jobs(&answer).unwrap();
        assert_eq!(jobs[0].id, "5521");
        assert_eq!(jobs[1].updated, 1401833060);
        assert!(changed_jobs(&json!({"data": {"jobs": [{"id": 1}]}})).is_err());
        assert!(changed_jobs(&json!({"error": "x"})).is_err());
    }
}
