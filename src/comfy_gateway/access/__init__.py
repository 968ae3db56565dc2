"""API keys, roles and tenants; admission (queue bounds, rate limits); where webhooks may go."""

from .destinations import DestinationPolicy, GuardedResolver
from .keys import KeyFileError, KeyRing
from .principal import ANONYMOUS, Principal, Role
from .quotas import Quotas
from .ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from .signing import WebhookSigner, new_message_id

__all__ = [
    "ANONYMOUS", "DestinationPolicy", "GuardedResolver", "KeyFileError", "KeyRing",
    "LocalRateLimiter", "Principal", "Quotas", "RateLimiter", "RedisRateLimiter", "Role", "WebhookSigner",
    "new_message_id",
]
