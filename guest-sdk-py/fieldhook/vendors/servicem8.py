"""ServiceM8 (``vendor = "servicem8"``): thin notices that say what
changed, not the values. An object webhook names an object type and one
entry per changed record (fetch it from :meth:`Notice.resource_url_for`);
an event webhook names its event (:meth:`Notice.event_name`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from ._shape import ShapeError, Vendor, items, obj, opt, req

VENDOR = "servicem8"
#: Where ServiceM8 serves records: ``<API>/<object>/<uuid>.json``.
API_BASE = "https://api.servicem8.com/api_1.0/"
VENDOR_INFO = Vendor(
    VENDOR,
    "ServiceM8",
    '{"object":"job","entry":[{"changed_fields":["status"],"time":"2015-01-01 00:00:00","uuid":"..."}],'
    '"resource_url":"https://api.servicem8.com/api_1.0/job/<uuid>.json"} (object webhook) or '
    '{"event":"job.completed",...} (event webhook)',
)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ShapeError(f"invalid type: expected a string, got {type(v).__name__}")
    return v


@dataclass
class Entry:
    """One changed record of an object webhook."""

    raw: dict
    uuid: str
    #: When it changed, UTC ``YYYY-MM-DD HH:MM:SS``.
    time: Optional[str]
    changed_fields: List[str]

    @classmethod
    def of(cls, raw: Any) -> "Entry":
        raw = obj(raw, "an entry object")
        return cls(raw, req(raw, "uuid", "str"), opt(raw, "time", "str"), items(raw, "changed_fields", _text))

    def changed(self, field: str) -> bool:
        return field in self.changed_fields


@dataclass
class Notice:
    """An object webhook (``object``, ``entry``, ``resource_url``) or an
    event webhook (``event``/``eventName``, ``data``)."""

    raw: dict
    object: Optional[str]
    entry: List[Entry]
    resource_url: Optional[str]
    event: Optional[str]
    event_name_field: Optional[str]
    data: Any

    @classmethod
    def of(cls, raw: Any) -> "Notice":
        raw = obj(raw, "an object")
        return cls(
            raw,
            opt(raw, "object", "str"),
            items(raw, "entry", Entry.of),
            opt(raw, "resource_url", "str"),
            opt(raw, "event", "str"),
            opt(raw, "eventName", "str"),
            raw.get("data"),
        )._check()

    def _check(self) -> "Notice":
        if self.is_object_webhook() or self.event_name() is not None:
            return self
        if self.object is not None and not self.entry:
            raise VENDOR_INFO.error("object webhook has no `entry`: nothing says which record changed")
        if self.object is None and self.entry:
            raise VENDOR_INFO.error("object webhook has no `object`: the entries' type is unknown")
        raise VENDOR_INFO.error(
            "body is neither an object webhook (`object` and `entry`) nor an event webhook (`event`)"
        )

    def is_object_webhook(self) -> bool:
        return self.object is not None and bool(self.entry)

    def event_name(self) -> Optional[str]:
        """The event webhook's name (``event`` or ``eventName``); None for object webhooks."""
        return self.event if self.event is not None else self.event_name_field

    def entry_for(self, event: Any) -> Entry:
        """The entry ``event`` is about: the only one, or the one whose uuid is its entity id."""
        if len(self.entry) == 1:
            return self.entry[0]
        entity = event.entity
        if entity is None:
            raise VENDOR_INFO.error(
                f"notice has {len(self.entry)} entries and event {event.id} names no entity to pick one"
            )
        for e in self.entry:
            if e.uuid == entity.id:
                return e
        raise VENDOR_INFO.error(f"notice has no entry with uuid `{entity.id}`")

    def resource_url_for(self, entry: Entry) -> Optional[str]:
        """``resource_url`` when it is the only entry or names its uuid, else
        ``<API_BASE><object>/<uuid>.json``; None without ``object``."""
        if self.resource_url is not None and (len(self.entry) == 1 or entry.uuid in self.resource_url):
            return self.resource_url
        if self.object is None:
            return None
        return f"{API_BASE}{self.object.lower()}/{entry.uuid}.json"


def parse(body: Any) -> Notice:
    """Reads a ServiceM8 body without checking the event's vendor."""
    return VENDOR_INFO.parse(body, Notice.of)


def view(event: Any) -> Notice:
    return VENDOR_INFO.view(event, Notice.of)
