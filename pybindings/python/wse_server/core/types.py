"""Enums shared by WSE applications (names and values as the original ``wse_server``)."""

from enum import Enum

__all__ = ["DeliveryGuarantee", "EventPriority"]


class EventPriority(Enum):
    """Priority of an application event; higher values are more urgent."""

    CRITICAL = 10
    HIGH = 8
    NORMAL = 5
    LOW = 3
    BACKGROUND = 1


class DeliveryGuarantee(Enum):
    """What the server promises for one delivery. Live traffic is at most once; a client that
    reconnects gets missed topic messages back through recovery, not through redelivery."""

    AT_MOST_ONCE = "at_most_once"
