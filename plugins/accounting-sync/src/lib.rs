//! Maps a completed job (Housecall Pro or Standard Webhooks) to a JSON POST
//! for an accounting system. Manifest `[config]`: `endpoint` (required) and
//! `currency` (default `USD`).
//!
//! The body is read through the SDK's typed vendor views into borrowing
//! structs, and the record is written from a `Serialize` struct: values
//! such as the job id and total are passed through exactly as the vendor
//! sent them, and a 1 KiB event is mapped with a handful of allocations.

use std::borrow::Cow;

use fieldhook_guest::json::{RawJson, Text};
use fieldhook_guest::vendors::{housecall_pro, standard_webhooks};
use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config};
use serde::{Deserialize, Serialize};

struct AccountingSync;

impl Plugin for AccountingSync {
    fn filter(event: &Event) -> bool {
        event.kind() == "job.completed"
    }

    fn handle(event: Event) -> Result<Decision, PluginError> {
        let endpoint = config::require("endpoint")?;
        let currency = config::get("currency").unwrap_or_else(|| "USD".into());
        let completed = JobCompleted::read(&event)?;
        let request = Request::post(endpoint)
            .json(&accounting_record(&completed, &event, &currency)?)
            .idempotency_key(format!("accounting-sync:{}", event.id()));
        Ok(Decision::deliver([request]))
    }
}

fieldhook_guest::export_plugin!(AccountingSync);

/// What the accounting record is made of: the job, and when it completed
/// according to the vendor.
struct JobCompleted<'a> {
    job: Job<'a>,
    occurred_at: Option<Text<'a>>,
}

/// The fields of a job that the record uses; any may be missing. Ids and
/// amounts are kept as sent (string or number) and passed through.
#[derive(Deserialize)]
struct Job<'a> {
    #[serde(borrow, default)]
    id: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    invoice_number: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    total_amount: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    customer: Option<Customer<'a>>,
}

#[derive(Deserialize)]
struct Customer<'a> {
    #[serde(borrow, default)]
    id: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    email: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    first_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    last_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    company: Option<Text<'a>>,
}

/// The JSON posted to the accounting system. Fields are in alphabetical
/// order, the order earlier versions wrote them in.
#[derive(Serialize)]
struct AccountingRecord<'r> {
    currency: &'r str,
    customer: CustomerRecord<'r>,
    external_id: RawJson<'r>,
    fieldhook_event_id: &'r str,
    invoice_number: Option<RawJson<'r>>,
    occurred_at: Option<&'r str>,
    source: &'r str,
    total_cents: Option<RawJson<'r>>,
}

#[derive(Serialize)]
struct CustomerRecord<'r> {
    email: Option<RawJson<'r>>,
    id: Option<RawJson<'r>>,
    name: Option<Cow<'r, str>>,
}

impl<'a> JobCompleted<'a> {
    /// Standard Webhooks put the job in `data` (or `data.job`); Housecall Pro
    /// under `job` (or `data`, `data.job`). Bodies from other sources are read
    /// as Housecall Pro envelopes.
    fn read(event: &'a Event) -> Result<Self, PluginError> {
        if event.vendor() == standard_webhooks::VENDOR {
            let payload = event.standard_webhooks()?;
            let data = payload.data.filter(RawJson::is_object);
            let job = data
                .and_then(|d| d.get("job"))
                .filter(RawJson::is_object)
                .or(data)
                .ok_or_else(|| {
                    PluginError::fatal("body has no job object (expected `data` or `data.job`)")
                })?;
            let job = job.parse().map_err(|err| {
                PluginError::fatal(format!(
                    "job object does not have the expected shape: {err}"
                ))
            })?;
            return Ok(JobCompleted {
                job,
                occurred_at: payload.timestamp,
            });
        }
        // One pass over the body: the envelope and the job together.
        let (envelope, job) = housecall_pro::Envelope::parse_with_record(event.body(), "job")?;
        Ok(JobCompleted {
            job,
            occurred_at: envelope.event_occurred_at,
        })
    }
}

/// The accounting record of a completed job. Missing fields become null;
/// a job without an `id` is a fatal error.
fn accounting_record<'r>(
    completed: &'r JobCompleted<'_>,
    event: &'r Event,
    currency: &'r str,
) -> Result<AccountingRecord<'r>, PluginError> {
    let job = &completed.job;
    let external_id = job
        .id
        .filter(|id| !id.is_null())
        .ok_or_else(|| PluginError::fatal("job object has no `id`"))?;
    let customer = job.customer.as_ref();
    Ok(AccountingRecord {
        currency,
        customer: CustomerRecord {
            email: customer.and_then(|c| c.email),
            id: customer.and_then(|c| c.id),
            name: customer.and_then(Customer::display_name),
        },
        external_id,
        fieldhook_event_id: event.id(),
        invoice_number: job.invoice_number,
        occurred_at: completed.occurred_at.as_deref().or(event.occurred_at()),
        source: event.source(),
        total_cents: job.total_amount,
    })
}

impl Customer<'_> {
    /// `first_name last_name` (trimmed; either may be missing), else `name`,
    /// else `company`, else none.
    fn display_name(&self) -> Option<Cow<'_, str>> {
        fn part<'s>(p: &'s Option<Text<'_>>) -> &'s str {
            p.as_deref().map_or("", str::trim)
        }
        match (part(&self.first_name), part(&self.last_name)) {
            ("", "") => self
                .name
                .as_deref()
                .or(self.company.as_deref())
                .map(Cow::Borrowed),
            (one, "") | ("", one) => Some(Cow::Borrowed(one)),
            (first, last) => Some(Cow::Owned(format!("{first} {last}"))),
        }
    }
}

#[cfg(test)]
mod tests;
