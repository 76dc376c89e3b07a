"""The host the SDK talks to.

In a component, :mod:`fieldhook._component` installs one built on the WIT
imports; in unit tests, :class:`fieldhook.testing.FakeHost` does. Plugins
never touch it.
"""

from __future__ import annotations

from typing import Any, Optional


class KvFailure(Exception):
    """A kv operation the host refused: ``tag`` is the WIT ``kv-error`` case
    (``too-large``, ``quota-exceeded``, ``unavailable``)."""

    def __init__(self, tag: str, message: str):
        super().__init__(f"{tag}: {message}")
        self.tag = tag
        self.message = message


_current: Optional[Any] = None


def use_host(host: Any) -> None:
    """Makes ``host`` the one the SDK talks to."""
    global _current
    _current = host


def current() -> Any:
    if _current is None:
        raise RuntimeError(
            "no fieldhook host: inside a component build with guest-sdk-py/build.py; "
            "in unit tests use fieldhook.testing.FakeHost"
        )
    return _current
