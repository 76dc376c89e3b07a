"""PYTHONPATH=guest-sdk-py python3 -m unittest discover -s tests/guests/fetcher-py -t tests/guests/fetcher-py"""

import unittest

from fieldhook.testing import CannedResponse, FakeHost, event

import app

CONFIG = {"url": "http://127.0.0.1:9/vendor/job/1", "endpoint": "http://127.0.0.1:9/out"}


class FetcherTest(unittest.TestCase):
    def test_what_the_fetch_answered_is_delivered(self):
        host = FakeHost(config=CONFIG, responses=[CannedResponse("http://127.0.0.1:9/vendor/*", method="GET", body={"id": 1})])
        result = host.run(app.Handler(), event())
        self.assertEqual(result.type, "deliver")
        self.assertEqual(result.requests[0].json, {"status": 200, "body": '{"id":1}'})
        self.assertEqual(host.requests[0].headers["accept"], "application/json")

    def test_a_fetch_the_host_denies_fails_for_good(self):
        host = FakeHost(config=CONFIG)
        result = host.run(app.Handler(), event())
        self.assertEqual((result.type, result.retryable), ("error", False))
        self.assertEqual(result.message, "the host denied http://127.0.0.1:9/vendor/job/1: grant it in plugin.toml (see docs/plugin-guide.md)")
        self.assertEqual(host.requests[0].outcome, "denied")


if __name__ == "__main__":
    unittest.main()
