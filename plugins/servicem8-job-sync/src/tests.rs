//! Runs on the build machine: `cargo test -p servicem8-job-sync`.

use fieldhook_guest::http::Response;
use fieldhook_guest::{Decision, EntityRef, Event, Plugin, PluginError, testing};
use serde_json::{Value, json};

use super::{JobSync, cents, date, decide, job_location, job_record, status_code};

const UUID: &str = "5d3f6a10-8c2e-4b7f-9e41-1f0b2c3d4e5f";
const JOB: &str = include_str!("../samples/job.json");
const WEBHOOK: &str = include_str!("../samples/webhook-job-updated.json");
const API: &str = "https://api.servicem8.com/api_1.0";

/// The event the host makes of the sample webhook.
fn notice() -> Event<'static> {
    notice_about(Some(format!("{API}/job/{UUID}.json")))
}

/// The sample notice, with the entity's URL set to `url`.
fn notice_about(url: Option<String>) -> Event<'static> {
    testing::event("job.updated", WEBHOOK)
        .with_id("evt_01SM8")
        .with_source("servicem8")
        .with_vendor("servicem8")
        .with_occurred_at(Some("2026-11-21 09:31:07"))
        .with_entity(Some(EntityRef {
            kind: "job".into(),
            id: UUID.into(),
            url,
        }))
}

fn answer(status: u16, body: &str) -> Response {
    Response {
        url: format!("{API}/job/{UUID}.json"),
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn configured() {
    testing::set_config([("endpoint", "https://ops.example.com/api/servicem8/jobs")]);
}

/// Runs `handle` with a fake fetch that answers `status`/`body` and records
/// the URL it was asked for.
fn handle_with(event: &Event, status: u16, body: &str) -> (Result<Decision, PluginError>, String) {
    let mut asked = String::new();
    let result = decide(event, |url| {
        asked = url.to_owned();
        Ok(answer(status, body))
    });
    (result, asked)
}

#[test]
fn the_sample_job_maps_to_the_canonical_record() {
    let record = job_record(&serde_json::from_str(JOB).unwrap(), &notice(), Some("AUD")).unwrap();
    assert_eq!(
        record,
        json!({
            "id": UUID,
            "number": "1042",
            "status": "completed",
            "status_label": "Completed",
            "active": true,
            "company_uuid": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
            "category_uuid": "a1b2c3d4-0000-4000-8000-00000000c0de",
            "description": "Replace hot water system",
            "work_done": "Installed 250L heat pump, removed old unit",
            "purchase_order": "PO-5531",
            "address": {
                "full": "12 Harbour St\nSydney NSW 2000",
                "street": "12 Harbour St",
                "city": "Sydney",
                "state": "NSW",
                "postcode": "2000",
                "country": "Australia",
                "lat": -33.8688,
                "lng": 151.2093,
            },
            "billing_address": "PO Box 77\nSydney NSW 2001",
            "totals": {
                "invoice_cents": 245050,
                "paid_cents": 0,
                "payment_received": false,
                "currency": "AUD",
            },
            "dates": {
                "created": "2026-11-18T08:12:44",
                "quoted": "2026-11-18T09:00:00",
                "work_order": "2026-11-19T07:30:00",
                "completed": "2026-11-21T09:30:52",
                "invoice_sent": "2026-11-21T09:35:00",
                "paid": null,
                "edited": "2026-11-21T09:31:05",
            },
            "notice": {
                "kind": "job.updated",
                "time": "2026-11-21 09:31:07",
                "changed_fields": ["status", "completion_date"],
            },
            "source": "servicem8",
            "fieldhook_event_id": "evt_01SM8",
        })
    );
}

#[test]
fn missing_and_malformed_fields_become_null_without_failing() {
    let job = json!({"uuid": UUID, "total_invoice_amount": "lots", "lat": "0", "active": "maybe",
        "completion_date": "soon", "status": 7, "job_address": "   "});
    let event = testing::event("job.completed", "not json").with_entity(None);
    let record = job_record(&job, &event, None).unwrap();
    assert_eq!(record["id"], UUID);
    assert_eq!(record["number"], Value::Null);
    assert_eq!(record["status"], "7");
    assert_eq!(record["active"], Value::Null);
    assert_eq!(record["address"]["full"], Value::Null);
    assert_eq!(record["address"]["lat"], Value::Null);
    assert_eq!(record["totals"]["invoice_cents"], Value::Null);
    assert_eq!(record["totals"]["currency"], Value::Null);
    assert_eq!(record["dates"]["completed"], Value::Null);
    assert_eq!(record["notice"]["changed_fields"], Value::Null);

    let err = job_record(&json!({"status": "Quote"}), &event, None).unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("no `uuid`"), "{}", err.message);
    assert!(job_record(&json!([1, 2]), &event, None).is_err());
}

#[test]
fn amounts_become_integer_cents() {
    for (amount, expected) in [
        (json!("2450.50"), Some(245050)),
        (json!("2450.5"), Some(245050)),
        (json!("12"), Some(1200)),
        (json!("-3.07"), Some(-307)),
        (json!(".5"), Some(50)),
        (json!(19.99), Some(1999)),
        (json!(7), Some(700)),
        (json!("1.005"), None),
        (json!("1,000.00"), None),
        (json!("-"), None),
        (json!(""), None),
        (json!(null), None),
        (json!("99999999999999999999"), None),
    ] {
        assert_eq!(cents(&amount), expected, "{amount}");
    }
}

#[test]
fn dates_are_iso_local_and_the_zero_date_is_null() {
    assert_eq!(
        date(&json!("2026-11-21 09:30:52")).as_deref(),
        Some("2026-11-21T09:30:52")
    );
    assert_eq!(date(&json!("2026-11-21")).as_deref(), Some("2026-11-21"));
    assert_eq!(date(&json!("0000-00-00 00:00:00")), None);
    assert_eq!(date(&json!("21/11/2026")), None);
    assert_eq!(date(&json!(20261121)), None);
}

#[test]
fn statuses_become_codes() {
    assert_eq!(status_code("Work Order"), "work_order");
    assert_eq!(status_code(" Quote "), "quote");
    assert_eq!(status_code("Unsuccessful"), "unsuccessful");
}

#[test]
fn filter_takes_job_notices_only() {
    assert!(JobSync::filter(&notice()));
    assert!(JobSync::filter(&testing::event("job.completed", "{}")));
    assert!(!JobSync::filter(&testing::event("company.updated", "{}")));
    assert!(!JobSync::filter(&testing::event(
        "jobactivity.updated",
        "{}"
    )));
}

#[test]
fn the_job_is_fetched_from_resource_url_and_delivered_to_the_endpoint() {
    configured();
    let (result, asked) = handle_with(&notice(), 200, JOB);
    assert_eq!(asked, format!("{API}/job/{UUID}.json"));
    let Decision::Deliver(requests) = result.unwrap() else {
        panic!("expected deliver")
    };
    let [request] = &requests[..] else {
        panic!("expected one request")
    };
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://ops.example.com/api/servicem8/jobs");
    assert_eq!(
        request.idempotency_key.as_deref(),
        Some(format!("servicem8-job-sync:{UUID}:2026-11-21T09:31:05").as_str())
    );
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["id"], UUID);
    assert_eq!(sent["totals"]["invoice_cents"], 245050);
}

#[test]
fn without_an_entity_the_uuid_comes_from_the_body() {
    let event = notice().with_entity(None);
    let (uuid, url) = job_location(&event, API).unwrap();
    assert_eq!(uuid, UUID);
    assert_eq!(url, format!("{API}/job/{UUID}.json"));
}

#[test]
fn a_resource_url_outside_the_api_is_not_fetched() {
    let event = notice_about(Some("https://attacker.example/api_1.0/job/x.json".into()));
    let (_, url) = job_location(&event, API).unwrap();
    assert_eq!(url, format!("{API}/job/{UUID}.json"));
    // The configured base wins, trailing slash or not.
    let (_, url) = job_location(&event, "http://127.0.0.1:9/api_1.0/").unwrap();
    assert_eq!(url, format!("http://127.0.0.1:9/api_1.0/job/{UUID}.json"));
}

#[test]
fn a_notice_without_a_usable_uuid_is_a_fatal_error() {
    for body in [
        r#"{"object":"job","entry":[]}"#,
        r#"{"object":"job","entry":[{"uuid":"../../company/x"}]}"#,
        "garbage",
    ] {
        let event = testing::event("job.updated", body).with_entity(None);
        let err = job_location(&event, API).unwrap_err();
        assert!(!err.retryable, "{body}");
        assert!(err.message.contains("no job uuid"), "{}", err.message);
    }
}

#[test]
fn rate_limits_and_server_errors_are_retryable_client_errors_are_not() {
    configured();
    for (status, retryable, says) in [
        (429, true, "HTTP 429"),
        (500, true, "HTTP 500"),
        (503, true, "HTTP 503"),
        (404, false, "has no job"),
        (401, false, "check the credential"),
        (403, false, "check the credential"),
        (400, false, "HTTP 400"),
        (302, false, "HTTP 302"),
    ] {
        let (result, _) = handle_with(&notice(), status, "{}");
        let err = result.unwrap_err();
        assert_eq!(err.retryable, retryable, "{status}: {}", err.message);
        assert!(err.message.contains(says), "{status}: {}", err.message);
    }
}

#[test]
fn an_answer_that_is_not_a_job_is_a_fatal_error() {
    configured();
    for body in ["<html>", "[]", r#"{"errorCode":1}"#] {
        let err = handle_with(&notice(), 200, body).0.unwrap_err();
        assert!(!err.retryable, "{body}: {}", err.message);
    }
}

#[test]
fn fetch_failures_pass_through_and_no_endpoint_is_fatal() {
    configured();
    let err = decide(&notice(), |_| Err(PluginError::retry("connection reset"))).unwrap_err();
    assert_eq!(err, PluginError::retry("connection reset"));

    testing::set_config::<&str, &str>([]);
    let err = handle_with(&notice(), 200, JOB).0.unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("`endpoint`"), "{}", err.message);
}
