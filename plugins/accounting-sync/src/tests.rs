//! Runs on the build machine: `cargo test -p accounting-sync`.

use fieldhook_guest::{Decision, Plugin, testing};
use serde_json::{Value, json};

use super::{AccountingSync, accounting_record};

const SAMPLE: &str = include_str!("../../../examples/quickstart/sample-job-completed.json");

fn record(body: Value) -> Result<Value, fieldhook_guest::PluginError> {
    let mut event = testing::event("job.completed", body.to_string());
    event.source = "hcp-main".into();
    event.id = "evt_01J".into();
    accounting_record(&body, &event, "USD")
}

#[test]
fn maps_the_housecall_pro_sample() {
    let sample: Value = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(
        record(sample).unwrap(),
        json!({
            "external_id": "job_7a2f9c41e8b34d6f",
            "invoice_number": "1042",
            "customer": {"id": "cus_4b1e0d9a77c2405e", "name": "Dana Whitfield", "email": "dana.whitfield@example.com"},
            "total_cents": 24500,
            "currency": "USD",
            "occurred_at": "2025-06-12T21:47:09Z",
            "source": "hcp-main",
            "fieldhook_event_id": "evt_01J",
        })
    );
}

#[test]
fn maps_standard_webhooks_and_nulls_missing_fields() {
    let body = json!({"type": "job.completed", "timestamp": "2025-06-12T21:47:09Z",
        "data": {"id": "job_1", "customer": {"id": "cus_1", "company": "Acme HVAC"}}});
    let record = record(body).unwrap();
    assert_eq!(record["external_id"], "job_1");
    assert_eq!(record["occurred_at"], "2025-06-12T21:47:09Z");
    assert_eq!(
        record["customer"],
        json!({"id": "cus_1", "name": "Acme HVAC", "email": null})
    );
    assert_eq!(record["invoice_number"], Value::Null);
    assert_eq!(record["total_cents"], Value::Null);
}

#[test]
fn occurred_at_falls_back_to_the_host() {
    let body = json!({"job": {"id": "job_1"}});
    let mut event = testing::event("job.completed", body.to_string());
    event.occurred_at = Some("2025-06-12T21:00:00Z".into());
    let record = accounting_record(&body, &event, "CAD").unwrap();
    assert_eq!(record["occurred_at"], "2025-06-12T21:00:00Z");
    assert_eq!(record["currency"], "CAD");
    assert_eq!(record["customer"]["name"], Value::Null);
}

#[test]
fn no_job_object_is_fatal() {
    for body in [
        json!({"event": "job.completed"}),
        json!({"data": "job_1"}),
        json!({"job": {"total_amount": 1}}),
    ] {
        let err = record(body.clone()).unwrap_err();
        assert!(!err.retryable, "{body}");
        assert!(err.message.contains("job"), "{}", err.message);
    }
}

#[test]
fn filter_takes_only_completed_jobs() {
    assert!(AccountingSync::filter(&testing::event(
        "job.completed",
        SAMPLE
    )));
    assert!(!AccountingSync::filter(&testing::event(
        "job.created",
        SAMPLE
    )));
    assert!(!AccountingSync::filter(&testing::event(
        "invoice.paid",
        SAMPLE
    )));
}

#[test]
fn handle_posts_the_record_with_an_idempotency_key() {
    testing::set_config([
        ("endpoint", "https://books.example.com/v1/invoices"),
        ("currency", "EUR"),
    ]);
    let Decision::Deliver(requests) =
        AccountingSync::handle(testing::event("job.completed", SAMPLE)).unwrap()
    else {
        panic!("expected deliver");
    };
    let [request] = &requests[..] else {
        panic!("expected one request")
    };
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://books.example.com/v1/invoices");
    assert_eq!(
        request.header_value("content-type"),
        Some("application/json")
    );
    assert_eq!(
        request.idempotency_key.as_deref(),
        Some("accounting-sync:evt_test")
    );
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["currency"], "EUR");
    assert_eq!(sent["external_id"], "job_7a2f9c41e8b34d6f");
}

#[test]
fn handle_errors_are_fatal() {
    testing::set_config::<&str, &str>([]);
    let err = AccountingSync::handle(testing::event("job.completed", SAMPLE)).unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("`endpoint`"), "{}", err.message);

    testing::set_config([("endpoint", "https://books.example.com/v1/invoices")]);
    let err = AccountingSync::handle(testing::event("job.completed", "not json")).unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("not JSON"), "{}", err.message);
}

#[test]
fn customer_name_uses_what_is_there() {
    let name = |customer: Value| {
        record(json!({"job": {"id": "job_1", "customer": customer}})).unwrap()["customer"]["name"]
            .clone()
    };
    assert_eq!(
        name(json!({"first_name": " Dana ", "last_name": null})),
        "Dana"
    );
    assert_eq!(name(json!({"last_name": "Whitfield"})), "Whitfield");
    assert_eq!(
        name(json!({"first_name": "", "name": "D. Whitfield", "company": "Acme"})),
        "D. Whitfield"
    );
    assert_eq!(name(json!(null)), Value::Null);
}
