"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver verifies.

    webhook-id:        msg_<uuid>, the same for every retry of one delivery
    webhook-timestamp: seconds since the epoch, of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under the secret>

The secret is given as `whsec_<base64>` (or bare base64), as the spec's libraries take it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookSigner:
    def __init__(self, secret: str) -> None:
        self._key = base64.b64decode(secret.removeprefix("whsec_"))

    def headers(self, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signed = b".".join((message_id.encode(), stamp.encode(), body))
        signature = base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest()).decode()
        return {"webhook-id": message_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}
