from __future__ import annotations

from support.redis import redis_prefix

__all__ = ["redis_prefix"]
