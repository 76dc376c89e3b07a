"""ServiceTrade (``vendor = "servicetrade"``): a firehose of entity changes,
several per message. The host stores one event per change, each with the
whole message: :meth:`Message.change_for` picks the one at hand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Optional

from ._shape import Id, Vendor, items, obj, opt, req

VENDOR = "servicetrade"
VENDOR_INFO = Vendor(
    VENDOR,
    "ServiceTrade",
    '{"messageId":"...","timestamp":"<seconds>","data":[{"action":"updated","timestamp":<seconds>,'
    '"entity":{"type":"job","id":1,"uri":"..."},"changeset":[{"field":"status","oldValue":..,"newValue":..}]}]}',
)


def _slug(text: str) -> str:
    """Lower case, runs of other characters as one ``_`` (as the host writes kinds)."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).rstrip("_")


@dataclass
class Entity:
    #: Entity type (``type``): ``job``, ``appointment``, ``jobitem``, ...
    kind: str
    #: Its id, as sent (an integer).
    id: Id
    uri: Optional[str]


@dataclass
class FieldChange:
    raw: dict
    field: str
    #: Value before the change, as sent (None for null or absent).
    old_value: Any
    new_value: Any

    @classmethod
    def of(cls, raw: Any) -> "FieldChange":
        raw = obj(raw, "a changeset object")
        return cls(raw, req(raw, "field", "str"), raw.get("oldValue"), raw.get("newValue"))

    def old_str(self) -> Optional[str]:
        return self.old_value if isinstance(self.old_value, str) else None

    def new_str(self) -> Optional[str]:
        return self.new_value if isinstance(self.new_value, str) else None


@dataclass
class Change:
    raw: dict
    #: ``created``, ``updated`` or ``deleted``.
    action: str
    #: When it changed: Unix seconds.
    timestamp: Optional[int]
    user_id: Optional[int]
    entity: Entity
    changeset: List[FieldChange]

    @classmethod
    def of(cls, raw: Any) -> "Change":
        raw = obj(raw, "a change object")
        action = req(raw, "action", "str")
        timestamp = opt(raw, "timestamp", "int")
        user_id = opt(raw, "userId", "int")
        e = req(raw, "entity", "obj")
        entity = Entity(req(e, "type", "str"), req(e, "id", "id"), opt(e, "uri", "str"))
        return cls(raw, action, timestamp, user_id, entity, items(raw, "changeset", FieldChange.of))

    def field(self, name: str) -> Optional[FieldChange]:
        return next((c for c in self.changeset if c.field == name), None)

    def is_(self, kind: str, action: str) -> bool:
        """True when this is ``action`` of an entity of type ``kind``, ignoring case."""
        return self.entity.kind.lower() == kind.lower() and self.action.lower() == action.lower()


@dataclass
class Message:
    """One ServiceTrade message: a batch of entity changes."""

    raw: dict
    message_id: str
    #: When the message was sent: Unix seconds as text.
    timestamp: Optional[str]
    data: List[Change]

    @classmethod
    def of(cls, raw: Any) -> "Message":
        raw = obj(raw, "an object")
        message_id = req(raw, "messageId", "str")
        timestamp = opt(raw, "timestamp", "str")
        req(raw, "data", "list")
        return cls(raw, message_id, timestamp, items(raw, "data", Change.of))

    def timestamp_secs(self) -> Optional[int]:
        try:
            return int(self.timestamp) if self.timestamp is not None else None
        except ValueError:
            return None

    def change_for(self, event: Any) -> Change:
        """The change ``event`` is about: the only one, or the one whose
        entity and action match the event's entity and kind."""
        if len(self.data) == 1:
            return self.data[0]
        entity = event.entity
        if entity is None:
            raise VENDOR_INFO.error(
                f"message has {len(self.data)} changes and event {event.id} names no entity to pick one"
            )
        action = event.kind.split(".", 1)[1] if "." in event.kind else ""
        matches = [c for c in self.data if _slug(c.entity.kind) == entity.kind and str(c.entity.id) == entity.id]
        found = next((c for c in matches if _slug(c.action) == action), matches[0] if matches else None)
        if found is None:
            raise VENDOR_INFO.error(f"message {self.message_id} has no change of {entity.kind} {entity.id}")
        return found


def parse(body: Any) -> Message:
    """Reads a ServiceTrade body without checking the event's vendor."""
    return VENDOR_INFO.parse(body, Message.of)


def view(event: Any) -> Message:
    return VENDOR_INFO.view(event, Message.of)
