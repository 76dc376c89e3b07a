//! ServiceM8 job notice -> canonical job record, POSTed to a configured
//! endpoint.
//!
//! ServiceM8 webhooks are thin: they name the job (`entry[].uuid`) and its
//! `resource_url`, never its values. The host turns each entry into one event
//! (kind `job.updated` for object webhooks, the event name such as
//! `job.completed` for event webhooks) whose entity is the job's uuid and
//! `resource_url`. For each such event this plugin `GET`s the job from the
//! ServiceM8 REST API through the host (which adds the API key named by the
//! manifest's `[[http]]` grant; the plugin never sees it), maps it to a
//! vendor-neutral record ([`job_record`]) and returns one `POST endpoint`
//! for the host to deliver.
//!
//! Manifest `[config]`:
//! - `endpoint` (required): where the record is POSTed;
//! - `api_base` (default [`DEFAULT_API_BASE`]): the ServiceM8 API; a
//!   `resource_url` outside it is ignored and the job's URL is built from
//!   its uuid instead;
//! - `currency` (optional): ISO code written into the record's totals
//!   (ServiceM8 job amounts carry no currency).

use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config, http, log};
use serde_json::{Value, json};

/// The ServiceM8 REST API, version 1.0.
pub const DEFAULT_API_BASE: &str = "https://api.servicem8.com/api_1.0";

/// ServiceM8's "no date" value, used for dates that never happened.
const ZERO_DATE: &str = "0000-00-00";

struct JobSync;

impl Plugin for JobSync {
    fn filter(event: &Event) -> bool {
        is_job_notice(event)
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        decide(&event, http::get)
    }
}

fieldhook_guest::export_plugin!(JobSync);

/// A job notice: kind `job.<change>`, or an entity of kind `job`.
fn is_job_notice(event: &Event) -> bool {
    event.kind().starts_with("job.") || event.entity().is_some_and(|e| e.kind == "job")
}

/// The whole of `handle`, with the HTTP GET passed in so that it can be
/// tested natively: fetch the job, map it, deliver it.
fn decide(
    event: &Event,
    fetch: impl FnOnce(&str) -> Result<http::Response, PluginError>,
) -> Result<Decision, PluginError> {
    let endpoint = config::require("endpoint")?;
    let api_base = config::get("api_base").unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
    let (uuid, url) = job_location(event, &api_base)?;
    let response = fetch(&url)?;
    check_status(&response, &uuid)?;
    let job: Value = response.json()?;
    let record = job_record(&job, event, config::get("currency").as_deref())?;
    // One record per revision of the job: two notices that fetched the same
    // revision carry the same key, so the destination can apply it once.
    let revision = record["dates"]["edited"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| event.id().to_owned());
    log::info(format!(
        "job {uuid} ({}) -> POST {endpoint}",
        record["status"].as_str().unwrap_or("no status")
    ));
    let request = Request::post(endpoint)
        .json(&record)
        .idempotency_key(format!("servicem8-job-sync:{uuid}:{revision}"));
    Ok(Decision::deliver([request]))
}

/// The job's uuid and the URL to fetch it from: the notice's `resource_url`
/// when it lies under `api_base`, else `{api_base}/job/{uuid}.json`. The
/// uuid comes from the event's entity, else from the body's first `entry`.
fn job_location(event: &Event, api_base: &str) -> Result<(String, String), PluginError> {
    let body: Option<Value> = event.json().ok();
    let uuid = event
        .entity()
        .filter(|e| e.kind == "job")
        .map(|e| e.id.clone())
        .or_else(|| {
            let body = body.as_ref()?;
            [&body["entry"][0]["uuid"], &body["uuid"], &body["job_uuid"]]
                .into_iter()
                .find_map(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|u| is_uuid_like(u))
        .ok_or_else(|| {
            PluginError::fatal(format!(
                "event {} ({}): no job uuid in the notice (expected entry[].uuid)",
                event.id(),
                event.kind()
            ))
        })?;
    let base = api_base.trim_end_matches('/');
    let given = event
        .entity()
        .and_then(|e| e.url.clone())
        .or_else(|| body.as_ref()?["resource_url"].as_str().map(str::to_owned));
    let url = match given {
        Some(url) if url.starts_with(&format!("{base}/")) => url,
        Some(url) => {
            log::warn(format!(
                "resource_url {url} is not under {base}: fetching the job by its uuid"
            ));
            format!("{base}/job/{uuid}.json")
        }
        None => format!("{base}/job/{uuid}.json"),
    };
    Ok((uuid, url))
}

/// ServiceM8 uuids are hex and dashes; anything else must not end up in a
/// URL path.
fn is_uuid_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A 2xx fetch is fine. 429 (ServiceM8's rate limit) and 5xx are worth a
/// retry; any other status (401, 403, 404, ...) will not change by itself.
fn check_status(response: &http::Response, uuid: &str) -> Result<(), PluginError> {
    let status = response.status;
    let message = match status {
        200..=299 => return Ok(()),
        401 | 403 => format!(
            "ServiceM8 refused job {uuid} (HTTP {status}): check the credential granted in plugin.toml and its scopes"
        ),
        404 => format!(
            "ServiceM8 has no job {uuid} (HTTP 404 from {})",
            response.url
        ),
        _ => format!(
            "fetching job {uuid} from {} answered HTTP {status}",
            response.url
        ),
    };
    match status {
        429 | 500..=599 => Err(PluginError::retry(message)),
        _ => Err(PluginError::fatal(message)),
    }
}

/// Maps a ServiceM8 job object to the canonical record. Absent or malformed
/// fields become `null`; only a job without a `uuid` is an error.
///
/// ServiceM8 sends money as decimal strings (`"245.00"`), flags as `0`/`1`
/// (or their strings) and dates as account-local `YYYY-MM-DD HH:MM:SS`, with
/// `0000-00-00 ...` for "never"; the record has integer cents, booleans and
/// `YYYY-MM-DDTHH:MM:SS` (still account-local, no offset) or `null`.
fn job_record(job: &Value, event: &Event, currency: Option<&str>) -> Result<Value, PluginError> {
    let id = text(&job["uuid"])
        .ok_or_else(|| PluginError::fatal("ServiceM8 answered with a job that has no `uuid`"))?;
    let changed_fields = body_changed_fields(event);
    Ok(json!({
        "id": id,
        "number": text(&job["generated_job_id"]),
        "status": text(&job["status"]).map(|s| status_code(&s)),
        "status_label": text(&job["status"]),
        "active": flag(&job["active"]),
        "company_uuid": text(&job["company_uuid"]),
        "category_uuid": text(&job["category_uuid"]),
        "description": text(&job["job_description"]),
        "work_done": text(&job["work_done_description"]),
        "purchase_order": text(&job["purchase_order_number"]),
        "address": {
            "full": text(&job["job_address"]),
            "street": text(&job["geo_street"]),
            "city": text(&job["geo_city"]),
            "state": text(&job["geo_state"]),
            "postcode": text(&job["geo_postcode"]),
            "country": text(&job["geo_country"]),
            "lat": number(&job["lat"]).filter(|v| *v != 0.0),
            "lng": number(&job["lng"]).filter(|v| *v != 0.0),
        },
        "billing_address": text(&job["billing_address"]),
        "totals": {
            "invoice_cents": cents(&job["total_invoice_amount"]),
            "paid_cents": cents(&job["payment_amount"]),
            "payment_received": flag(&job["payment_received"]),
            "currency": currency,
        },
        "dates": {
            "created": date(&job["date"]),
            "quoted": date(&job["quote_date"]),
            "work_order": date(&job["work_order_date"]),
            "completed": date(&job["completion_date"]),
            "invoice_sent": date(&job["invoice_sent_stamp"]),
            "paid": date(&job["payment_date"]),
            "edited": date(&job["edit_date"]),
        },
        "notice": {
            "kind": event.kind(),
            "time": event.occurred_at(),
            "changed_fields": changed_fields,
        },
        "source": "servicem8",
        "fieldhook_event_id": event.id(),
    }))
}

/// `changed_fields` of the notice's entry for this job, when the body has it.
fn body_changed_fields(event: &Event) -> Value {
    let Ok(body) = event.json::<Value>() else {
        return Value::Null;
    };
    let uuid = event.entity().map(|e| e.id.as_str());
    body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| uuid.is_none() || entry["uuid"].as_str() == uuid)
        .map(|entry| entry["changed_fields"].clone())
        .filter(Value::is_array)
        .unwrap_or(Value::Null)
}

/// `Work Order` -> `work_order`: ServiceM8's statuses (`Quote`, `Work
/// Order`, `Completed`, `Unsuccessful`) as stable codes.
fn status_code(label: &str) -> String {
    label
        .trim()
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// A non-empty string (trimmed), or a number as text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// `1`, `"1"`, `true` -> true; `0`, `"0"`, `false` -> false; else none.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A decimal amount (`"245.5"`, `245.5`, `"-12"`) as integer cents, without
/// going through floating point for strings. More than two decimals or
/// anything else that is not an amount: none.
fn cents(v: &Value) -> Option<i64> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_i64() => return n.as_i64()?.checked_mul(100),
        Value::Number(n) => format!("{:.2}", n.as_f64()?),
        _ => return None,
    };
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.as_str()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    if frac.len() > 2 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    let total = whole.checked_mul(100)?.checked_add(frac)?;
    Some(if negative { -total } else { total })
}

/// `2025-06-12 14:30:00` -> `2025-06-12T14:30:00`; ServiceM8's zero date
/// and anything that is not such a date -> none.
fn date(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    if s.is_empty() || s.starts_with(ZERO_DATE) {
        return None;
    }
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return None;
    }
    Some(s.replacen(' ', "T", 1))
}

#[cfg(test)]
mod tests;
