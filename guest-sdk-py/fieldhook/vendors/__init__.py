"""Typed views of each vendor's webhook body (docs/vendors/), mirroring the
Rust SDK's ``fieldhook_guest::vendors``: the same fields (snake_case), the
same fallbacks, the same errors.

| vendor (``event.vendor``) | accessor | view |
|---|---|---|
| ``servicem8`` | ``event.servicem8()`` | :class:`servicem8.Notice` |
| ``servicetrade`` | ``event.servicetrade()`` | :class:`servicetrade.Message` |
| ``housecall-pro`` | ``event.housecall_pro()`` | :class:`housecall_pro.Envelope` |
| ``servicetitan`` (incl. Scheduling Pro) | ``event.servicetitan()`` | :class:`servicetitan.Envelope` |
| ``jobber`` | ``event.jobber()`` | :class:`jobber.Notice` |
| ``standard-webhooks`` | ``event.standard_webhooks()`` | :class:`standard_webhooks.Payload` |

Each accessor checks the event's vendor first; ``<module>.parse(body)``
skips that check. Every failure is a fatal :class:`fieldhook.PluginError`
naming the vendor and what is missing. Each view keeps the vendor's object
as ``raw``.
"""

from . import housecall_pro, jobber, servicem8, servicetitan, servicetrade, standard_webhooks

__all__ = ["housecall_pro", "jobber", "servicem8", "servicetitan", "servicetrade", "standard_webhooks"]
