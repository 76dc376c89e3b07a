//! Runs on the build machine: `cargo test -p accounting-sync`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fieldhook_guest::vendors::{housecall_pro, standard_webhooks};
use fieldhook_guest::{Decision, Event, Plugin, PluginError, testing};
use serde_json::{Value, json};

use super::{AccountingSync, JobCompleted, accounting_record};

const SAMPLE: &str = include_str!("../../../examples/quickstart/sample-job-completed.json");

/// The record for `event`, as the JSON the accounting system receives.
fn mapped(event: &Event, currency: &str) -> Result<Value, PluginError> {
    let completed = JobCompleted::read(event)?;
    let record = accounting_record(&completed, event, currency)?;
    Ok(serde_json::to_value(record).expect("a record is JSON"))
}

/// The record for `body` arriving from a source of `vendor`.
fn record_from(vendor: &str, body: Value) -> Result<Value, PluginError> {
    let event = testing::event_from(vendor, "job.completed", body.to_string())
        .with_source("hcp-main")
        .with_id("evt_01J");
    mapped(&event, "USD")
}

/// The record for a Housecall Pro `body`.
fn record(body: Value) -> Result<Value, PluginError> {
    record_from(housecall_pro::VENDOR, body)
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
    let record = record_from(standard_webhooks::VENDOR, body).unwrap();
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
fn standard_webhooks_may_nest_the_job_under_data() {
    let body = json!({"type": "job.completed", "data": {"job": {"id": 7, "total_amount": 100}}});
    let record = record_from(standard_webhooks::VENDOR, body).unwrap();
    assert_eq!(record["external_id"], 7);
    assert_eq!(record["total_cents"], 100);
}

#[test]
fn occurred_at_falls_back_to_the_host() {
    let body = json!({"event": "job.completed", "job": {"id": "job_1"}});
    let event = testing::event_from(housecall_pro::VENDOR, "job.completed", body.to_string())
        .with_occurred_at(Some("2025-06-12T21:00:00Z"));
    let record = mapped(&event, "CAD").unwrap();
    assert_eq!(record["occurred_at"], "2025-06-12T21:00:00Z");
    assert_eq!(record["currency"], "CAD");
    assert_eq!(record["customer"]["name"], Value::Null);
}

#[test]
fn no_job_object_is_fatal() {
    for (vendor, body) in [
        (housecall_pro::VENDOR, json!({"event": "job.completed"})),
        (
            housecall_pro::VENDOR,
            json!({"event": "job.completed", "data": "job_1"}),
        ),
        (
            housecall_pro::VENDOR,
            json!({"event": "job.completed", "job": {"total_amount": 1}}),
        ),
        (
            standard_webhooks::VENDOR,
            json!({"type": "job.completed", "data": "job_1"}),
        ),
        (
            standard_webhooks::VENDOR,
            json!({"type": "job.completed", "data": {"job": {"id": null}}}),
        ),
    ] {
        let err = record_from(vendor, body.clone()).unwrap_err();
        assert!(!err.retryable, "{body}");
        assert!(err.message.contains("job"), "{}", err.message);
    }
}

#[test]
fn a_body_that_is_not_the_vendors_is_fatal_and_names_the_vendor() {
    let err = record(json!({"type": "job.completed", "data": {"id": "job_1"}})).unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message
            .contains("Housecall Pro body does not have the expected shape: missing field `event`"),
        "{}",
        err.message
    );
    let err = record(json!({"event": "job.completed", "job": {"id": "j", "customer": "cus_1"}}))
        .unwrap_err();
    assert!(
        err.message
            .contains("`job.completed` record does not have the expected shape"),
        "{}",
        err.message
    );
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
fn the_posted_json_is_byte_for_byte_what_earlier_versions_sent() {
    testing::set_config([("endpoint", "https://books.example.com/v1/invoices")]);
    let body = |event: Event| match AccountingSync::handle(event).unwrap() {
        Decision::Deliver(requests) => String::from_utf8(requests[0].body.clone()).unwrap(),
        other => panic!("not delivered: {other:?}"),
    };
    assert_eq!(
        body(testing::event_from(
            housecall_pro::VENDOR,
            "job.completed",
            SAMPLE
        )),
        r#"{"currency":"USD","customer":{"email":"dana.whitfield@example.com","id":"cus_4b1e0d9a77c2405e","name":"Dana Whitfield"},"external_id":"job_7a2f9c41e8b34d6f","fieldhook_event_id":"evt_test","invoice_number":"1042","occurred_at":"2025-06-12T21:47:09Z","source":"test","total_cents":24500}"#
    );
    let standard = r#"{"type":"job.completed","timestamp":"2025-06-12T21:47:09Z","data":{"id":"job_1","customer":{"id":"cus_1","company":"Acme HVAC"}}}"#;
    assert_eq!(
        body(testing::event_from(
            standard_webhooks::VENDOR,
            "job.completed",
            standard
        )),
        r#"{"currency":"USD","customer":{"email":null,"id":"cus_1","name":"Acme HVAC"},"external_id":"job_1","fieldhook_event_id":"evt_test","invoice_number":null,"occurred_at":"2025-06-12T21:47:09Z","source":"test","total_cents":null}"#
    );
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
        record(json!({"event": "job.completed", "job": {"id": "job_1", "customer": customer}}))
            .unwrap()["customer"]["name"]
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

// Counts this thread's allocations, for the test below.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn reading_and_mapping_a_1_kib_event_allocates_almost_nothing() {
    assert!(SAMPLE.len() > 1024, "the sample is a realistic size");
    let event = testing::event_from(housecall_pro::VENDOR, "job.completed", SAMPLE);
    let before = ALLOCATIONS.with(Cell::get);
    let completed = JobCompleted::read(&event).unwrap();
    let record = accounting_record(&completed, &event, "USD").unwrap();
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(record.customer.name.as_deref(), Some("Dana Whitfield"));
    // serde_json's scratch buffer for skipping nested values (grown once or
    // twice per pass: envelope, job) and the customer's "first last" name;
    // every value is borrowed from the body. A `serde_json::Value` tree of
    // the same body takes 87.
    assert!(allocations <= 4, "{allocations} allocations");
}
