"""Event filtering for WSE with MongoDB-style criteria.

The matching itself runs in the native module (``rust_match_event``); this module keeps the
class-based entry point that applications import.

Criteria are a dict from field paths to conditions. A path walks nested dicts with dots
(``"payload.price"``). A condition is either the value the field must equal, or a dict of
operators that must all hold:

- ``$eq``, ``$ne``: equal / not equal (a missing field counts as ``None``)
- ``$gt``, ``$gte``, ``$lt``, ``$lte``: ordering comparisons (a missing field never matches)
- ``$in``, ``$nin``: the field is / is not an element of the given list
- ``$exists``: ``True`` if the field must be present, ``False`` if it must be absent
- ``$regex``: ``str(field)`` matches the pattern at its start (linear-time engine)
- ``$contains``, ``$startswith``, ``$endswith``: substring tests on ``str(field)``

At the top level, ``{"$and": [criteria, ...]}`` and ``{"$or": [criteria, ...]}`` combine
criteria, and a ``start_from_latest`` key matches every event.

Example::

    criteria = {
        "event_type": {"$in": ["OrderPlaced", "OrderFilled"]},
        "symbol": {"$regex": "^AAPL"},
        "payload.quantity": {"$gte": 100},
    }
    if EventFilter.matches(event, criteria):
        handle(event)
"""

import logging
from typing import Any

from wse_server._wse_accel import rust_match_event

log = logging.getLogger("wse.filters")


class EventFilter:
    """Matches events against MongoDB-style criteria (see the module documentation)."""

    @staticmethod
    def matches(event: dict[str, Any], criteria: dict[str, Any]) -> bool:
        """Return whether ``event`` satisfies ``criteria``."""
        return rust_match_event(event, criteria)
