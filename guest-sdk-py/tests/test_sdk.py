"""The SDK's pure parts under plain CPython (no component bindings):
``python3 -m unittest discover -s guest-sdk-py/tests``."""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fieldhook import EntityRef, Event, Header, PluginError, Request  # noqa: E402
from fieldhook.vendors import housecall_pro_record  # noqa: E402


def event(body: bytes, kind: str = "job.completed") -> Event:
    return Event(
        id="evt_1",
        source="hcp",
        vendor="housecall-pro",
        kind=kind,
        entity=EntityRef("job", "job_1"),
        received_at_ms=1,
        occurred_at=None,
        attempt=1,
        headers=[Header("Content-Type", b"application/json")],
        body=body,
    )


class EventTest(unittest.TestCase):
    def test_headers_are_found_case_insensitively(self):
        self.assertEqual(event(b"{}").header("content-type"), "application/json")
        self.assertIsNone(event(b"{}").header("x-missing"))

    def test_a_body_that_is_not_json_is_a_fatal_plugin_error(self):
        with self.assertRaises(PluginError) as e:
            event(b"not json").json()
        self.assertFalse(e.exception.retryable)
        self.assertIn("evt_1", e.exception.message)


class RequestTest(unittest.TestCase):
    def test_json_sets_the_body_and_the_content_type_once(self):
        r = Request.post("https://books.example.com/x").header("content-type", "text/plain").json({"a": 1})
        self.assertEqual(json.loads(r.body), {"a": 1})
        self.assertEqual(r.header_value("Content-Type"), "text/plain")
        self.assertEqual(len(r.headers), 1)

    def test_a_relative_or_non_http_url_is_refused(self):
        for url in ("/relative", "ftp://x/y", "https://"):
            with self.assertRaises(PluginError, msg=url):
                Request.get(url)

    def test_idempotency_key_and_method(self):
        r = Request("patch", "http://127.0.0.1/x").idempotency_key("k1")
        self.assertEqual((r.method, r.key), ("PATCH", "k1"))


class VendorsTest(unittest.TestCase):
    def test_housecall_pro_record_sits_under_the_kind_or_data(self):
        self.assertEqual(housecall_pro_record({"job": {"id": 1}}, "job.completed"), {"id": 1})
        self.assertEqual(housecall_pro_record({"data": {"id": 2}}, "invoice.paid"), {"id": 2})
        self.assertEqual(housecall_pro_record({"data": {"invoice": {"id": 3}}}, "invoice.paid"), {"id": 3})
        self.assertIsNone(housecall_pro_record({"event": "x"}, "job.completed"))


if __name__ == "__main__":
    unittest.main()
