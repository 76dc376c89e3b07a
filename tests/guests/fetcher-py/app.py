"""Test fixture: fetches config url with fieldhook.http during decide and
delivers what came back. Exercises the wasi:http helper -> host policy."""

import fieldhook
from fieldhook import Event, Request, config, deliver, http


class Handler(fieldhook.Plugin):
    def decide(self, event: Event) -> fieldhook.Decision:
        response = http.send(Request.get(config.require("url")).header("Accept", "application/json"))
        body = {"status": response.status, "body": response.text()}
        return deliver(Request.post(config.require("endpoint")).json(body))
