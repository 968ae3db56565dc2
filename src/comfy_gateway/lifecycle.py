"""The one life cycle of every long-lived resource: the stores, blob stores and event hubs."""

from __future__ import annotations

import enum


class Lifecycle(enum.Enum):
    """NEW until opened, OPEN until closed; CLOSED is final (a closed resource cannot reopen)."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"
