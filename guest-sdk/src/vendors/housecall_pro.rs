//! Housecall Pro (`vendor = "housecall-pro"`): the full record in an
//! envelope.
//!
//! ```json
//! {"event":"job.completed","event_occurred_at":"...","company_id":"...","job":{...full record...}}
//! ```
//!
//! The record sits under the key named by the event's first part (`job.*` →
//! `job`, `customer.*` → `customer`). Another documented envelope is
//! `{"id":"...","event":"invoice.paid","created_at":"...","data":{...}}`;
//! [`Envelope::record`] reads both.
//!
//! ```
//! use fieldhook_guest::testing;
//!
//! let event = testing::event_from("housecall-pro", "job.completed", r#"{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:05Z","company_id":"233b","job":{"id":"job_7f3e","invoice_number":"1042","total_amount":24500,"customer":{"id":"cus_d892","first_name":"Dana","last_name":"Reyes"}}}"#);
//! let envelope = event.housecall_pro()?;
//! assert_eq!(envelope.event, "job.completed");
//! let job = envelope.job()?;
//! assert_eq!(job.id, "job_7f3e");
//! assert_eq!(job.total_amount, Some(24500));
//! let customer = job.customer.expect("a customer");
//! assert_eq!(customer.display_name().as_deref(), Some("Dana Reyes"));
//! # Ok::<(), fieldhook_guest::PluginError>(())
//! ```

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Vendor;
use crate::PluginError;
use crate::json::{Id, RawJson, Text};

/// `event.vendor()` of Housecall Pro sources.
pub const VENDOR: &str = "housecall-pro";

pub(crate) const VENDOR_INFO: Vendor = Vendor {
    id: VENDOR,
    name: "Housecall Pro",
    shape: r#"{"event":"job.completed","event_occurred_at":"...","company_id":"...","job":{...}} or {"id":"...","event":"job.completed","created_at":"...","data":{...}}"#,
};

/// A Housecall Pro webhook envelope.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The event: `job.completed`, `customer.updated`,
    /// `job.appointment.rescheduled`, ...
    pub event: Text<'a>,
    /// When it happened (first envelope).
    pub event_occurred_at: Option<Text<'a>>,
    /// The Housecall Pro company (account).
    pub company_id: Option<Text<'a>>,
    /// The envelope id (second envelope).
    pub id: Option<Id<'a>>,
    /// When it happened (second envelope).
    pub created_at: Option<Text<'a>>,
    /// The record of the second envelope, as sent.
    pub data: Option<RawJson<'a>>,
    /// The records under the usual keys, read in the same pass.
    records: Records<'a>,
    /// The body, searched for a record under another key.
    body: &'a [u8],
}

/// The records under the usual keys of the first envelope (`job.*` →
/// `job`); others are found by searching the body.
#[derive(Debug, Clone, Copy)]
struct Records<'a> {
    job: Option<RawJson<'a>>,
    invoice: Option<RawJson<'a>>,
    customer: Option<RawJson<'a>>,
    estimate: Option<RawJson<'a>>,
    lead: Option<RawJson<'a>>,
}

impl<'a> Records<'a> {
    /// `Some(record)` when `key` is one of these keys (the record itself may
    /// be absent), `None` for any other key.
    fn get(&self, key: &str) -> Option<Option<RawJson<'a>>> {
        Some(match key {
            "job" => self.job,
            "invoice" => self.invoice,
            "customer" => self.customer,
            "estimate" => self.estimate,
            "lead" => self.lead,
            _ => return None,
        })
    }
}

#[derive(Deserialize, Default)]
struct Wire<'a> {
    #[serde(borrow)]
    event: Text<'a>,
    #[serde(borrow, default)]
    event_occurred_at: Option<Text<'a>>,
    #[serde(borrow, default)]
    company_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    id: Option<Id<'a>>,
    #[serde(borrow, default)]
    created_at: Option<Text<'a>>,
    #[serde(borrow, default)]
    data: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    job: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    invoice: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    customer: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    estimate: Option<RawJson<'a>>,
    #[serde(borrow, default)]
    lead: Option<RawJson<'a>>,
}

/// Reads the envelope's fields and the record under `key` into `T` in one
/// pass over the body ([`Envelope::parse_with_record`]).
struct OnePass<'k, T> {
    key: &'k str,
    record: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for OnePass<'_, T> {
    type Value = (Wire<'de>, Option<T>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for OnePass<'_, T> {
    type Value = (Wire<'de>, Option<T>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Housecall Pro envelope object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut wire, mut record, mut has_event) = (Wire::default(), None, false);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if *key == *self.key {
                // `null` or absent: the record is looked for in `data`.
                record = map.next_value::<Option<T>>()?;
                continue;
            }
            match &*key {
                "event" => {
                    wire.event = map.next_value()?;
                    has_event = true;
                }
                "event_occurred_at" => wire.event_occurred_at = map.next_value()?,
                "company_id" => wire.company_id = map.next_value()?,
                "id" => wire.id = map.next_value()?,
                "created_at" => wire.created_at = map.next_value()?,
                "data" => wire.data = map.next_value()?,
                "job" => wire.job = map.next_value()?,
                "invoice" => wire.invoice = map.next_value()?,
                "customer" => wire.customer = map.next_value()?,
                "estimate" => wire.estimate = map.next_value()?,
                "lead" => wire.lead = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !has_event {
            return Err(de::Error::missing_field("event"));
        }
        Ok((wire, record))
    }
}

impl<'a> Envelope<'a> {
    /// Reads a Housecall Pro body without checking the event's vendor. Fails
    /// when there is no `event` (the URL check `{"foo":"bar"}` has none; the
    /// host never stores it as an event).
    pub fn parse(body: &'a [u8]) -> Result<Self, PluginError> {
        let wire: Wire<'a> = VENDOR_INFO.parse(body)?;
        Ok(Self::from_wire(wire, body))
    }

    /// The envelope and, read in the same pass, the record under `key`
    /// (`job`) as `T`, a plugin's own struct that may borrow from the body.
    /// [`Envelope::parse`] then [`Envelope::record_as`] read the record
    /// twice; this reads it once. Without an object under `key`, the record
    /// is taken from `data.<key>`, then `data`, as [`Envelope::record`] does;
    /// errors are those of `parse` and `record_as`.
    pub fn parse_with_record<T: Deserialize<'a>>(
        body: &'a [u8],
        key: &str,
    ) -> Result<(Self, T), PluginError> {
        let seed = OnePass {
            key,
            record: std::marker::PhantomData,
        };
        let Ok((wire, Some(record))) = VENDOR_INFO.parse_seed(body, seed) else {
            // No object under `key`, or something did not parse: the two
            // passes find the record in `data` or say what is wrong.
            let envelope = Self::parse(body)?;
            let record = envelope.parse_record(envelope.record_under(key)?)?;
            return Ok((envelope, record));
        };
        Ok((Self::from_wire(wire, body), record))
    }

    fn from_wire(wire: Wire<'a>, body: &'a [u8]) -> Self {
        Envelope {
            event: wire.event,
            event_occurred_at: wire.event_occurred_at,
            company_id: wire.company_id,
            id: wire.id,
            created_at: wire.created_at,
            data: wire.data,
            records: Records {
                job: wire.job,
                invoice: wire.invoice,
                customer: wire.customer,
                estimate: wire.estimate,
                lead: wire.lead,
            },
            body,
        }
    }

    /// The kind of record the event carries: the event's first part (`job`
    /// for `job.appointment.rescheduled`).
    pub fn record_type(&self) -> &str {
        self.event.split('.').next().unwrap_or_default()
    }

    /// When it happened: `event_occurred_at`, else `created_at`.
    pub fn occurred_at(&self) -> Option<&str> {
        self.event_occurred_at
            .as_deref()
            .or(self.created_at.as_deref())
    }

    /// The record as sent: the object under the event's first part, else
    /// under `data.<first part>`, else `data` itself.
    pub fn record(&self) -> Result<RawJson<'a>, PluginError> {
        self.record_under(self.record_type())
    }

    /// The record deserialized into `T` (a plugin's own struct, which may
    /// borrow from the body).
    pub fn record_as<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        self.parse_record(self.record()?)
    }

    /// The object under `key`, else under `data.<key>`, else `data` itself.
    fn record_under(&self, key: &str) -> Result<RawJson<'a>, PluginError> {
        let objects = |v: &RawJson<'a>| v.is_object();
        let under_key = match self.records.get(key) {
            Some(record) => record,
            None => serde_json::from_slice::<RawJson<'a>>(self.body)
                .ok()
                .and_then(|body| body.get(key)),
        };
        under_key
            .filter(objects)
            .or_else(|| self.data.and_then(|d| d.get(key)).filter(objects))
            .or_else(|| self.data.filter(objects))
            .ok_or_else(|| {
                VENDOR_INFO.error(format!(
                    "`{}` body has no `{key}` object (nor `data`)",
                    self.event
                ))
            })
    }

    /// `record` deserialized into `T`; the error names the event.
    fn parse_record<T: Deserialize<'a>>(&self, record: RawJson<'a>) -> Result<T, PluginError> {
        record.parse().map_err(|err| {
            VENDOR_INFO.error(format!(
                "`{}` record does not have the expected shape: {err}",
                self.event
            ))
        })
    }

    /// The job of a `job.*` event.
    pub fn job(&self) -> Result<Job<'a>, PluginError> {
        self.expect_record("job")?;
        self.record_as()
    }

    /// The invoice of an `invoice.*` event.
    pub fn invoice(&self) -> Result<Invoice<'a>, PluginError> {
        self.expect_record("invoice")?;
        self.record_as()
    }

    /// The customer of a `customer.*` event (a job's customer is
    /// [`Job::customer`]).
    pub fn customer(&self) -> Result<Customer<'a>, PluginError> {
        self.expect_record("customer")?;
        self.record_as()
    }

    fn expect_record(&self, kind: &str) -> Result<(), PluginError> {
        match self.record_type() == kind {
            true => Ok(()),
            false => Err(VENDOR_INFO.error(format!(
                "`{}` carries a {} record, not a {kind}",
                self.event,
                self.record_type()
            ))),
        }
    }
}

/// A job record (amounts in cents).
#[derive(Debug, Clone, Deserialize)]
pub struct Job<'a> {
    /// Job id (`job_...`).
    #[serde(borrow)]
    pub id: Text<'a>,
    /// Invoice number.
    #[serde(borrow, default)]
    pub invoice_number: Option<Id<'a>>,
    /// What the job is.
    #[serde(borrow, default)]
    pub description: Option<Text<'a>>,
    /// `scheduled`, `in_progress`, `completed`, ...
    #[serde(borrow, default)]
    pub work_status: Option<Text<'a>>,
    /// Total, cents.
    #[serde(default)]
    pub total_amount: Option<i64>,
    /// Still owed, cents.
    #[serde(default)]
    pub outstanding_balance: Option<i64>,
    /// The customer.
    #[serde(borrow, default)]
    pub customer: Option<Customer<'a>>,
    /// Line items.
    #[serde(borrow, default)]
    pub line_items: Vec<LineItem<'a>>,
    /// When the job was created.
    #[serde(borrow, default)]
    pub created_at: Option<Text<'a>>,
    /// When the job was last changed.
    #[serde(borrow, default)]
    pub updated_at: Option<Text<'a>>,
}

/// One line of a job.
#[derive(Debug, Clone, Deserialize)]
pub struct LineItem<'a> {
    /// Line item id.
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// What was sold.
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// How many.
    #[serde(default)]
    pub quantity: Option<f64>,
    /// Price of one, cents.
    #[serde(default)]
    pub unit_price: Option<i64>,
}

/// An invoice record (amounts in cents).
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice<'a> {
    /// Invoice id (`inv_...`).
    #[serde(borrow)]
    pub id: Text<'a>,
    /// Invoice number.
    #[serde(borrow, default)]
    pub invoice_number: Option<Id<'a>>,
    /// The job invoiced.
    #[serde(borrow, default)]
    pub job_id: Option<Text<'a>>,
    /// Amount, cents.
    #[serde(default)]
    pub amount: Option<i64>,
    /// `paid`, `open`, ...
    #[serde(borrow, default)]
    pub status: Option<Text<'a>>,
    /// When it was paid.
    #[serde(borrow, default)]
    pub paid_at: Option<Text<'a>>,
    /// The customer.
    #[serde(borrow, default)]
    pub customer: Option<Customer<'a>>,
}

/// A customer record (in full for `customer.*` events, embedded in jobs and
/// invoices).
#[derive(Debug, Clone, Deserialize)]
pub struct Customer<'a> {
    /// Customer id (`cus_...`).
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// First name.
    #[serde(borrow, default)]
    pub first_name: Option<Text<'a>>,
    /// Last name.
    #[serde(borrow, default)]
    pub last_name: Option<Text<'a>>,
    /// Company name.
    #[serde(borrow, default)]
    pub company: Option<Text<'a>>,
    /// Email address.
    #[serde(borrow, default)]
    pub email: Option<Text<'a>>,
    /// Mobile number.
    #[serde(borrow, default)]
    pub mobile_number: Option<Text<'a>>,
}

impl<'a> Customer<'a> {
    /// `first_name last_name` (trimmed; either may be missing), else
    /// `company`; `None` when neither gives any text.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        let part = |p: &Option<Text<'a>>| p.clone().map(|t| trim(t.0)).unwrap_or_default();
        let (first, last) = (part(&self.first_name), part(&self.last_name));
        let name = match (first.is_empty(), last.is_empty()) {
            (_, true) => first,
            (true, false) => last,
            (false, false) => Cow::Owned(format!("{first} {last}")),
        };
        if !name.is_empty() {
            return Some(name);
        }
        self.company
            .clone()
            .map(|c| trim(c.0))
            .filter(|c| !c.is_empty())
    }
}

/// `text` without surrounding whitespace, still borrowed when it was.
fn trim(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::Envelope;
    use crate::{Event, testing};

    /// The public test vector of shared/vendors.md.
    const CUSTOMER_UPDATED: &str = r#"{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","customer":{"id":"cus_d8924aacf0d24a888280e12187e40f6f","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}"#;
    const JOB_COMPLETED: &str =
        include_str!("../../../plugins/hcp-invoice-accounting/samples/job-completed.json");
    const INVOICE_PAID: &str =
        include_str!("../../../plugins/hcp-invoice-accounting/samples/invoice-paid.json");
    const QUICKSTART: &str = include_str!("../../../examples/quickstart/sample-job-completed.json");

    fn event(kind: &str, body: &str) -> Event<'static> {
        testing::event_from("housecall-pro", kind, body.trim())
    }

    #[test]
    fn one_pass_reads_what_two_passes_read() {
        for body in [JOB_COMPLETED, QUICKSTART] {
            let body = body.trim().as_bytes();
            let two = Envelope::parse(body).unwrap();
            let (one, job) = Envelope::parse_with_record::<super::Job<'_>>(body, "job").unwrap();
            let again = two.job().unwrap();
            assert_eq!(
                (one.event.as_str(), one.occurred_at()),
                (two.event.as_str(), two.occurred_at())
            );
            assert_eq!(job.id, again.id);
            assert_eq!(job.total_amount, again.total_amount);
            assert_eq!(job.customer.map(|c| c.id), again.customer.map(|c| c.id));
            // The record read in the pass is not kept twice.
            assert!(one.records.job.is_none());
        }
    }

    #[test]
    fn one_pass_finds_the_record_in_data_too() {
        let body = br#"{"id":"e1","event":"job.completed","created_at":"2026-01-02T03:04:05Z","data":{"job":{"id":"job_9"}}}"#;
        let (envelope, job) = Envelope::parse_with_record::<super::Job<'_>>(body, "job").unwrap();
        assert_eq!(
            (job.id.as_str(), envelope.occurred_at()),
            ("job_9", Some("2026-01-02T03:04:05Z"))
        );
        let body = br#"{"event":"job.completed","data":{"id":"job_8"}}"#;
        let (_, job) = Envelope::parse_with_record::<super::Job<'_>>(body, "job").unwrap();
        assert_eq!(job.id, "job_8");
    }

    #[test]
    fn one_pass_errors_name_what_is_missing() {
        let err = Envelope::parse_with_record::<super::Job<'_>>(br#"{"job":{"id":"j"}}"#, "job")
            .unwrap_err();
        assert!(
            err.message.contains("missing field `event`"),
            "{}",
            err.message
        );
        let err =
            Envelope::parse_with_record::<super::Job<'_>>(br#"{"event":"job.completed"}"#, "job")
                .unwrap_err();
        assert!(err.message.contains("no `job` object"), "{}", err.message);
        let err = Envelope::parse_with_record::<super::Job<'_>>(
            br#"{"event":"job.completed","job":{"id":7}}"#,
            "job",
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message
                .contains("`job.completed` record does not have the expected shape"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_public_vector_carries_the_customer_under_customer() {
        let event = event("customer.updated", CUSTOMER_UPDATED);
        let envelope = event.housecall_pro().unwrap();
        assert_eq!(envelope.event, "customer.updated");
        assert_eq!(envelope.record_type(), "customer");
        assert_eq!(envelope.occurred_at(), Some("2026-07-24T05:38:14Z"));
        assert_eq!(
            envelope.company_id.as_deref(),
            Some("233b75f9-4b4f-4a83-b21b-c1ed9e571daa")
        );
        let customer = envelope.customer().unwrap();
        assert_eq!(
            customer.id.as_deref(),
            Some("cus_d8924aacf0d24a888280e12187e40f6f")
        );
        assert_eq!(
            customer.display_name().as_deref(),
            Some("ZZ-Webhook Test-DELETE-ME")
        );
        let err = envelope.job().unwrap_err();
        assert_eq!(
            err.message,
            "Housecall Pro `customer.updated` carries a customer record, not a job"
        );
    }

    #[test]
    fn a_completed_job_carries_the_job_with_its_customer_and_lines() {
        for body in [JOB_COMPLETED, QUICKSTART] {
            let event = event("job.completed", body);
            let job = event.housecall_pro().unwrap().job().unwrap();
            assert!(job.id.starts_with("job_"));
            assert_eq!(job.invoice_number.unwrap(), "1042");
            assert_eq!(job.total_amount, Some(24500));
            assert!(job.customer.unwrap().email.is_some());
            assert_eq!(
                job.line_items
                    .iter()
                    .filter_map(|l| l.unit_price)
                    .sum::<i64>(),
                if body == QUICKSTART { 24500 } else { 21500 }
            );
        }
    }

    #[test]
    fn a_paid_invoice_carries_the_invoice() {
        let event = event("invoice.paid", INVOICE_PAID);
        let invoice = event.housecall_pro().unwrap().invoice().unwrap();
        assert_eq!(invoice.id, "inv_51c0");
        assert_eq!(invoice.job_id.as_deref(), Some("job_7f3e"));
        assert_eq!(invoice.amount, Some(24500));
        assert_eq!(invoice.status.as_deref(), Some("paid"));
        assert_eq!(invoice.paid_at.as_deref(), Some("2026-11-21T09:29:41Z"));
    }

    #[test]
    fn the_data_envelope_is_read_too() {
        let body = r#"{"id":"whe_1","event":"invoice.paid","created_at":"2026-11-21T09:30:00Z","data":{"id":"inv_1","amount":100}}"#;
        let envelope = Envelope::parse(body.as_bytes()).unwrap();
        assert_eq!(envelope.id.as_ref().unwrap(), "whe_1");
        assert_eq!(envelope.occurred_at(), Some("2026-11-21T09:30:00Z"));
        assert_eq!(envelope.invoice().unwrap().amount, Some(100));

        let nested = r#"{"event":"job.completed","data":{"job":{"id":"job_1"}}}"#;
        let envelope = Envelope::parse(nested.as_bytes()).unwrap();
        assert_eq!(envelope.job().unwrap().id, "job_1");
    }

    #[test]
    fn a_record_under_a_less_common_key_is_found_too() {
        let body =
            r#"{"event":"employee.created","employee":{"id":"pro_18c3f7","first_name":"Marco"}}"#;
        let envelope = Envelope::parse(body.as_bytes()).unwrap();
        let record = envelope.record().unwrap();
        assert_eq!(
            record.get("id").and_then(|id| id.as_str()).as_deref(),
            Some("pro_18c3f7")
        );
    }

    #[test]
    fn customer_names_use_what_is_there() {
        let name = |customer: &str| {
            serde_json::from_str::<super::Customer<'_>>(customer)
                .unwrap()
                .display_name()
                .map(|n| n.into_owned())
        };
        assert_eq!(
            name(r#"{"first_name":" Dana ","last_name":null}"#).as_deref(),
            Some("Dana")
        );
        assert_eq!(name(r#"{"last_name":"Reyes"}"#).as_deref(), Some("Reyes"));
        assert_eq!(
            name(r#"{"first_name":"","company":" Acme "}"#).as_deref(),
            Some("Acme")
        );
        assert_eq!(name(r#"{"id":"cus_1"}"#), None);
    }

    #[test]
    fn a_malformed_envelope_says_what_is_missing() {
        let cases = [
            (
                r#"{"foo":"bar"}"#,
                "Housecall Pro body does not have the expected shape: missing field `event`",
            ),
            (
                r#"{"event":"job.completed","company_id":"c"}"#,
                "Housecall Pro `job.completed` body has no `job` object (nor `data`)",
            ),
            (
                r#"{"event":"job.completed","job":{"total_amount":1}}"#,
                "missing field `id`",
            ),
            (
                r#"{"event":"job.completed","job":{"id":"j","total_amount":"lots"}}"#,
                "`job.completed` record does not have the expected shape: invalid type: string \"lots\", expected i64",
            ),
            ("{", "Housecall Pro body is not JSON"),
        ];
        for (body, says) in cases {
            let err = event("job.completed", body)
                .housecall_pro()
                .and_then(|e| e.job())
                .unwrap_err();
            assert!(!err.retryable);
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
    }
}
