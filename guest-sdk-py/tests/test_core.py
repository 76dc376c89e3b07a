"""The SDK under plain CPython, through its fake host:
``python3 -m unittest discover -s guest-sdk-py/tests``."""

import subprocess
import sys
import unittest
from pathlib import Path
from typing import Any, Callable

SDK = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SDK))

import fieldhook  # noqa: E402
from fieldhook import PluginError, Request, config, deliver, drop, http, kv, log, skip  # noqa: E402
from fieldhook.testing import CannedResponse, FakeHost, event  # noqa: E402


class Probe(fieldhook.Plugin):
    """Runs ``fn(event)`` during the call and keeps what it returned."""

    def __init__(self, fn: Callable[[fieldhook.Event], Any]):
        self.fn = fn
        self.value: Any = None

    def decide(self, event):
        self.value = self.fn(event)
        return drop("done")


def within(ev, fn, host=None):
    probe = Probe(fn)
    result = (host or FakeHost()).run(probe, ev)
    if result.type == "error":
        raise PluginError(result.message, result.retryable)
    return probe.value


class EventTest(unittest.TestCase):
    def test_fields_are_read_from_the_host_on_first_use_once_each(self):
        ev = event(id="evt_9", kind="job.completed", received_at_ms=1700000000123, entity={"kind": "job", "id": 7})
        got = within(ev, lambda e: [e.kind, e.kind, e.id, e.received_at_ms, e.entity, e.occurred_at, e.dedupe_key, e.parsed, e.coalesced, e.attempt])
        self.assertEqual(got, ["job.completed", "job.completed", "evt_9", 1700000000123, fieldhook.EntityRef("job", "7"), None, None, True, 1, 1])
        self.assertEqual(ev.reads, ["kind", "id", "received_at_ms", "entity", "occurred_at", "dedupe_key", "parsed", "coalesced", "attempt"])

    def test_one_header_is_asked_for_by_name(self):
        ev = event(headers={"Content-Type": "application/json", "X-Bin": b"\xff"})
        got = within(ev, lambda e: [e.header("content-type"), e.header("CONTENT-TYPE"), e.header("missing"), e.header_bytes("x-bin")])
        self.assertEqual(got, ["application/json", "application/json", None, b"\xff"])
        self.assertEqual(ev.reads, ["header:content-type", "header:missing", "header:x-bin"])
        every = event(headers=[("A", "1")])
        self.assertEqual(within(every, lambda e: (e.headers, e.header("a"))[1]), "1")
        self.assertEqual(every.reads, ["headers"])

    def test_json_is_parsed_once_and_not_json_is_fatal(self):
        ev = event(body={"a": 1})
        self.assertTrue(within(ev, lambda e: e.json() is e.json()))
        self.assertEqual(ev.reads, ["body"])
        with self.assertRaises(PluginError) as caught:
            within(event(id="evt_x", body="<xml/>"), lambda e: e.json())
        self.assertFalse(caught.exception.retryable)
        self.assertTrue(caught.exception.message.startswith("event evt_x: body is not JSON"))
        self.assertEqual(within(event(body=b"h\xff"), lambda e: e.text()), "h\ufffd")

    def test_the_event_is_released_when_handle_returns_even_when_it_raises(self):
        kept = []

        class Boom(fieldhook.Plugin):
            def decide(self, e):
                kept.append(e)
                e.kind
                raise ValueError("boom")

        ev = event(kind="x")
        result = FakeHost().run(Boom(), ev)
        self.assertEqual((result.type, result.message, result.retryable), ("error", "uncaught ValueError: boom", False))
        self.assertTrue(ev.released)
        self.assertEqual(kept[0].kind, "x", "fields read during the call stay readable")
        with self.assertRaisesRegex(PluginError, "read after handle returned"):
            kept[0].body


class DecisionTest(unittest.TestCase):
    def test_accepts_false_skips_and_decide_may_skip_drop_or_deliver(self):
        class Only(fieldhook.Plugin):
            def accepts(self, e):
                return e.kind == "a"

            def decide(self, e):
                return skip()

        self.assertEqual(FakeHost().run(Only(), event(kind="b")).type, "skip")
        self.assertEqual(FakeHost().run(Only(), event(kind="a")).type, "skip")

        class Nothing(fieldhook.Plugin):
            def decide(self, e):
                return None

        result = FakeHost().run(Nothing(), event())
        self.assertEqual(result.type, "error")
        self.assertIn("decide() must return skip(), drop(reason) or deliver", result.message)

        class Two(fieldhook.Plugin):
            def decide(self, e):
                return deliver(Request.put("https://a.example/x"), Request.get("https://a.example/y"))

        self.assertEqual([r.method for r in FakeHost().run(Two(), event()).requests], ["PUT", "GET"])
        with self.assertRaisesRegex(PluginError, "takes Request objects"):
            deliver({"url": "x"})  # type: ignore[arg-type]

    def test_plugin_errors_keep_their_retryability(self):
        def failing(error):
            class Failing(fieldhook.Plugin):
                def decide(self, e):
                    raise error

            return FakeHost().run(Failing(), event())

        self.assertEqual((failing(PluginError.retry("503")).retryable, failing(PluginError.retry("503")).message), (True, "503"))
        self.assertEqual(failing(PluginError.fatal("bad")).retryable, False)
        self.assertEqual(failing(KeyError("k")).message, "uncaught KeyError: 'k'")


class RequestTest(unittest.TestCase):
    def test_builder_json_headers_and_key(self):
        r = (
            Request.post("https://books.example.com/x")
            .header("content-type", "application/vnd.api+json")
            .json({"a": 1})
            .header("X-A", "1")
            .header("x-a", "2")
            .append_header("X-A", "3")
            .idempotency_key("k1")
        )
        self.assertEqual(r.body, b'{"a":1}')
        self.assertEqual(r.header_value("Content-Type"), "application/vnd.api+json")
        self.assertEqual(len([h for h in r.headers if h.name.lower() == "x-a"]), 2)
        self.assertEqual((Request("patch", "http://127.0.0.1/x").method, r.key), ("PATCH", "k1"))
        for url in ("/relative", "ftp://x/y", "https://"):
            with self.assertRaises(PluginError, msg=url):
                Request.get(url)
        with self.assertRaisesRegex(PluginError, "cannot be serialized as JSON"):
            Request.post("https://a.example").json({"n": object()})


class HostTest(unittest.TestCase):
    def test_config_get_require_entries(self):
        host = FakeHost(config={"endpoint": "https://a.example", "empty": ""})
        got = within(event(), lambda e: [config.get("endpoint"), config.get("nope"), config.get("nope", "d"), config.entries()], host)
        self.assertEqual(got, ["https://a.example", None, "d", {"empty": "", "endpoint": "https://a.example"}])
        for key in ("nope", "empty"):
            with self.assertRaises(PluginError) as caught:
                within(event(), lambda e: config.require(key), host)
            self.assertEqual(caught.exception.message, f"config `{key}` is not set: add it under [config] in plugin.toml")

    def test_kv_get_set_ttl_delete_json_and_failures(self):
        host = FakeHost(kv={"seen": "1"})

        def use(e):
            kv.set("a", "x", ttl_ms=60000)
            kv.set_json("j", {"n": 1})
            return [kv.get_text("seen"), kv.get("a"), kv.get_json("j"), kv.get("missing"), kv.delete("a"), kv.delete("a")]

        self.assertEqual(within(event(), use, host), ["1", b"x", {"n": 1}, None, True, False])
        self.assertNotIn("j", host.kv_ttl)
        within(event(), lambda e: kv.set("t", b"\x01", ttl_ms=5), host)
        self.assertEqual(host.kv_ttl["t"], 5)
        for tag, retryable in (("unavailable", True), ("too-large", False), ("quota-exceeded", False)):
            with self.assertRaises(PluginError) as caught:
                within(event(), lambda e: kv.get("a"), FakeHost(kv_fail=tag))
            self.assertEqual(caught.exception.retryable, retryable, tag)
            self.assertEqual(caught.exception.message, f"key-value store: get `a`: fake {tag}")

    def test_log_lines_reach_the_host(self):
        host = FakeHost()
        within(event(), lambda e: (log.info("hi"), log.warn(3)), host)
        self.assertEqual(host.logs, [("info", "hi"), ("warn", "3")])

    def test_http_canned_answers_status_errors_and_denials(self):
        host = FakeHost(
            responses=[
                CannedResponse("https://api.example.com/ok", method="GET", body={"id": 1}),
                CannedResponse("https://api.example.com/busy*", status=503, body="later"),
                CannedResponse("https://api.example.com/gone", status=404),
            ]
        )

        def use(e):
            r = http.send(Request.get("https://api.example.com/ok").idempotency_key("k"))
            return [r.status, r.ok, r.json(), r.header("content-type"), http.get_json("https://api.example.com/ok")]

        self.assertEqual(within(event(), use, host), [200, True, {"id": 1}, "application/json", {"id": 1}])
        self.assertEqual(host.requests[0].headers["idempotency-key"], "k")
        with self.assertRaises(PluginError) as caught:
            within(event(), lambda e: http.get_json("https://api.example.com/busy/1"), host)
        self.assertEqual((caught.exception.retryable, caught.exception.message), (True, "https://api.example.com/busy/1 answered HTTP 503"))
        with self.assertRaises(PluginError) as caught:
            within(event(), lambda e: http.get_json("https://api.example.com/gone"), host)
        self.assertFalse(caught.exception.retryable)
        with self.assertRaises(PluginError) as caught:
            within(event(), lambda e: http.get("https://elsewhere.example.com/"), host)
        self.assertFalse(caught.exception.retryable)
        self.assertIn("the host denied https://elsewhere.example.com/", caught.exception.message)
        self.assertEqual(host.requests[-1].outcome, "denied")

    def test_without_a_host_the_sdk_says_how_to_get_one(self):
        script = "import fieldhook\ntry:\n    fieldhook.config.get('x')\nexcept RuntimeError as e:\n    print(e)"
        out = subprocess.run([sys.executable, "-c", script], cwd=SDK, capture_output=True, text=True, check=True).stdout
        self.assertIn("no fieldhook host", out)
        self.assertIn("fieldhook.testing.FakeHost", out)


if __name__ == "__main__":
    unittest.main()
