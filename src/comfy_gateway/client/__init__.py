"""A client for a running gateway: batch submission with progress, and the pool at a glance.

It speaks only the public HTTP API, so it imports nothing of the gateway's own modules."""
