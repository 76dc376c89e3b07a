#!/usr/bin/env python3
"""Sign fieldhook's vendor test vectors with independent implementations.

The Rust tests in host/src/ingress/vendors/*.rs must never sign their own
inputs with the code under test. This script produces every signature they
use beyond the public vectors of shared/vendors.md, with:

- the `standardwebhooks` package from PyPI (pip install standardwebhooks)
  for Standard Webhooks, and
- Python's own `hmac`, `hashlib` and `base64` for everything else.

Run it and paste its output (Rust constants, grouped by the file that uses
them) into the tests:

    pip install standardwebhooks
    python3 host/src/ingress/vendors/testdata/sign_vectors.py

Every input is fixed, so the output is the same on every run.
"""

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

from standardwebhooks import Webhook


def rust_str(value: str) -> str:
    """A Rust raw string literal holding `value` exactly."""
    hashes = "#"
    while f'"{hashes}' in value:
        hashes += "#"
    return f'r{hashes}"{value}"{hashes}'


def const(name: str, value: str) -> None:
    print(f"const {name}: &str = {rust_str(value)};")


def section(file: str) -> None:
    print()
    print(f"// ---- {file} ----")


def mac(alg, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, alg).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


TS = 1700000000  # 2023-11-14T22:13:20Z; tests inject `now` around it.

# ---------------------------------------------------------------- Standard Webhooks
section("standard_webhooks.rs")
sw_secret = "whsec_" + b64(b"fieldhook-standard-webhooks-key1")
sw_previous = "whsec_" + b64(b"fieldhook-standard-webhooks-key0")
sw_other = "whsec_" + b64(b"somebody-else-entirely-their-key")
sw_body = '{"type":"invoice.paid","timestamp":"2023-11-14T22:13:20Z","data":{"id":"inv_1"}}'
sw_id = "msg_2Yh0fieldhook0multi"
when = datetime.fromtimestamp(TS, tz=timezone.utc)


def sw_sig(secret, msg_id, body):
    return Webhook(secret).sign(msg_id, when, body)


good = sw_sig(sw_secret, sw_id, sw_body)
wrong_key = sw_sig(sw_other, sw_id, sw_body)
# The right MAC under an unknown version must be ignored.
unknown_version = good.replace("v1,", "v2,", 1)
const("SW_SECRET", sw_secret)
const("SW_PREVIOUS_SECRET", sw_previous)
const("SW_BODY", sw_body)
const("SW_ID", sw_id)
const("SW_SIG_MULTI", f"{wrong_key} {unknown_version} v1a,bm90LWEtc2lnbmF0dXJl {good}")
const("SW_SIG_UNKNOWN_VERSION_ONLY", unknown_version)
const("SW_SIG_PREVIOUS_SECRET", sw_sig(sw_previous, sw_id, sw_body))
raw_secret = b"a-raw-secret-without-the-whsec-prefix"
const("SW_RAW_SECRET", raw_secret.decode())
const("SW_SIG_RAW_SECRET", Webhook(raw_secret).sign(sw_id, when, sw_body))
sw_bad_json = "this is {not json"
const("SW_BAD_JSON_BODY", sw_bad_json)
const("SW_SIG_BAD_JSON", sw_sig(sw_secret, sw_id, sw_bad_json))
print(f"const SW_TS: i64 = {TS};")

# ---------------------------------------------------------------- generic HMAC
section("generic_hmac.rs")
g_secret = b"generic-hmac-secret-current"
g_previous = b"generic-hmac-secret-previous"
g_body = b'{"event":"job.created","id":"evt_1","job":{"id":"J-77"}}'
const("G_SECRET", g_secret.decode())
const("G_PREVIOUS_SECRET", g_previous.decode())
const("G_BODY", g_body.decode())
const("G_SHA256_HEX", mac(hashlib.sha256, g_secret, g_body).hex())
const("G_SHA1_B64_PREFIXED", "sha1=" + b64(mac(hashlib.sha1, g_secret, g_body)))
const("G_SHA512_B64_PREFIXED", "sha512=" + b64(mac(hashlib.sha512, g_secret, g_body)))
const("G_SHA256_HEX_PREVIOUS", mac(hashlib.sha256, g_previous, g_body).hex())
ts = str(TS).encode()
const("G_SHA256_HEX_TS_DOT_BODY", mac(hashlib.sha256, g_secret, ts + b"." + g_body).hex())
const("G_SHA256_HEX_SLACK_STYLE", "v0=" + mac(hashlib.sha256, g_secret, b"v0:" + ts + b":" + g_body).hex())
print(f"const G_TS: i64 = {TS};")

# ---------------------------------------------------------------- Housecall Pro
section("housecall_pro.rs")
h_secret = b"hcp_webhook_signing_secret_EXAMPLE"
h_body1 = (b'{"event":"job.completed","event_occurred_at":"2023-11-14T22:13:20Z",'
           b'"company_id":"co_1","job":{"id":"job_42","work_status":"complete"}}')
h_body2 = (b'{"id":"evt_9f","event":"invoice.paid","created_at":"2023-11-14T22:13:20Z",'
           b'"company_id":"co_1","data":{"id":"inv_7"}}')
const("H_JOB_BODY", h_body1.decode())
const("H_JOB_SIG", mac(hashlib.sha256, h_secret, ts + b"." + h_body1).hex())
const("H_DATA_BODY", h_body2.decode())
const("H_DATA_SIG", mac(hashlib.sha256, h_secret, ts + b"." + h_body2).hex())
const("H_JOB_SIG_PREVIOUS", mac(hashlib.sha256, b"hcp_previous_secret", ts + b"." + h_body1).hex())
print(f"const H_TS: i64 = {TS};")

# ---------------------------------------------------------------- Jobber
section("jobber.rs")
j_previous = b"jobber_previous_client_secret"
j_body = (b'{"data":{"webHookEvent":{"topic":"JOB_UPDATE","appId":"app-1","accountId":"QWNjb3VudDox",'
          b'"itemId":"Sm9iOjQy","occurredAt":"2023-11-14T22:13:20Z"}}}')
const("J_PREVIOUS_SECRET", j_previous.decode())
const("J_JOB_UPDATE_BODY", j_body.decode())
const("J_JOB_UPDATE_SIG_PREVIOUS", b64(mac(hashlib.sha256, j_previous, j_body)))
const("J_JOB_UPDATE_SIG_CURRENT", b64(mac(hashlib.sha256, b"jobber_oauth_client_secret_EXAMPLE", j_body)))

# ---------------------------------------------------------------- ServiceTitan
section("servicetitan.rs")
st_secret = b"st-hmac-key-0123456789abcdef0123456789abcdef"
st_body = b'{"eventId":"evt-sp-1","eventType":"Session Completed","tenantId":42,"data":{"id":"sess_77"}}'
st_digest = mac(hashlib.sha256, st_secret, st_body)
const("ST_SESSION_BODY", st_body.decode())
const("ST_SESSION_HEX", st_digest.hex())
const("ST_SESSION_B64", b64(st_digest))
const("ST_SESSION_HEX_PREFIXED", "sha256=" + st_digest.hex())
const("ST_SESSION_B64_PREFIXED", "sha256=" + b64(st_digest))
st_abandoned = b'{"eventId":"evt-sp-2","eventType":"Qualified Abandoned Session","tenantId":42,"data":{"id":"sess_78"}}'
const("ST_ABANDONED_BODY", st_abandoned.decode())
const("ST_ABANDONED_HEX", mac(hashlib.sha256, st_secret, st_abandoned).hex())

# ---------------------------------------------------------------- ServiceM8 add-on JWT
section("servicem8.rs")
m8_app_secret = b"servicem8-addon-app-secret-EXAMPLE"


def jwt(header: dict, claims: dict, key: bytes) -> str:
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64url(mac(hashlib.sha256, key, f"{head}.{body}".encode()))
    return f"{head}.{body}.{sig}"


sub_claims = {
    "eventVersion": "1.0",
    "eventName": "webhook_subscription",
    "auth": {"accountUUID": "acc-1", "staffUUID": "staff-1"},
    "eventArgs": {
        "object": "job",
        "entry": [{"changed_fields": ["status"], "time": "2024-05-01 10:00:00", "uuid": "job-uuid-1"}],
        "resource_url": "https://api.servicem8.com/api_1.0/job/job-uuid-1.json",
    },
}
action_claims = {
    "eventVersion": "1.0",
    "eventName": "Send_To_Accounts",
    "auth": {"accountUUID": "acc-1", "staffUUID": "staff-1"},
    "eventArgs": {"jobUUID": "job-uuid-2"},
}
const("M8_APP_SECRET", m8_app_secret.decode())
const("M8_JWT_WEBHOOK", jwt({"alg": "HS256", "typ": "JWT"}, sub_claims, m8_app_secret))
const("M8_JWT_ACTION", jwt({"alg": "HS256", "typ": "JWT"}, action_claims, m8_app_secret))
const("M8_JWT_OTHER_KEY", jwt({"alg": "HS256", "typ": "JWT"}, sub_claims, b"not-the-app-secret"))
none_head = b64url(json.dumps({"alg": "none", "typ": "JWT"}, separators=(",", ":")).encode())
none_body = b64url(json.dumps(sub_claims, separators=(",", ":")).encode())
const("M8_JWT_ALG_NONE", f"{none_head}.{none_body}.c2lnbmF0dXJl")

# ---------------------------------------------------------------- basic auth
section("shared_secret.rs")
const("BASIC_HEADER", "Basic " + b64(b"fieldhook:s3cr3t:with:colons"))
const("BASIC_HEADER_WRONG_PASSWORD", "Basic " + b64(b"fieldhook:nope"))
