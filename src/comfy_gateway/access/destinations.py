"""Where webhooks may go: http(s) to public addresses only, unless WEBHOOK_ALLOW_HOSTS lists the host.

A `callback_url` is checked at submit (422) and every name is resolved then; the same check runs
again on the addresses each delivery connects to (`GuardedResolver`), so a name that changes its
answer later (DNS rebinding) still cannot reach an internal address. Host spellings that are
numbers (`2130706433`, `0x7f.1`) are read as the IPv4 addresses they are to every resolver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_S = 5.0  # a name that takes longer to resolve is refused: the submit waits for it
# Named here because some are not "private" to ipaddress: Alibaba's 100.100.100.200 is shared space,
# AWS's IPv6 fd00:ec2::254 unique-local; both are caught by is_global too, and listed to be plain.
METADATA_ADDRESSES = frozenset(map(ipaddress.ip_address, (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")))


def literal_address(host: str) -> IPAddress | None:
    """The address a host spells directly, including the legacy IPv4 forms inet_aton accepts."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and address not in METADATA_ADDRESSES


class DestinationPolicy:
    def __init__(self, allow: Sequence[str] = ()) -> None:
        """`allow`: WEBHOOK_ALLOW_HOSTS entries, each a host name, an address or a network (10.1.0.0/16)."""
        names = [h for h in allow if literal_address(h) is None and "/" not in h]
        self._hosts = frozenset(h.lower().rstrip(".") for h in names)
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(h.strip("[]"), strict=False) for h in allow if h not in names)

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._hosts

    def allows_address(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in net for net in self._networks)

    def check_url(self, url: str) -> tuple[str, str]:
        """(scheme, host) of an acceptable URL's form; its addresses are checked by `check`."""
        parts = urlsplit(url)
        if len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
            raise DestinationRefused("callback_url must be an absolute http or https URL", parameter="callback_url")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise DestinationRefused("callback_url has an invalid port", parameter="callback_url") from None
        return parts.scheme, parts.hostname

    async def check(self, url: str) -> str:
        """`url` if a webhook may be sent there; else DestinationRefused. Resolves the name, opens nothing."""
        _, host = self.check_url(url)
        if self.allows_host(host):
            return url
        literal = literal_address(host)
        addresses = [literal] if literal is not None else await self._resolve(host)
        refused = [str(a) for a in addresses if not self.allows_address(a)]
        if refused:
            raise DestinationRefused(
                f"callback_url host {host!r} is, or resolves to, a non-public address ({', '.join(refused)}); "
                "list it in WEBHOOK_ALLOW_HOSTS to allow it", parameter="callback_url")
        return url

    @staticmethod
    async def _resolve(host: str) -> list[IPAddress]:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, TimeoutError):
            raise DestinationRefused(f"callback_url host {host!r} does not resolve",
                                     parameter="callback_url") from None
        return _addresses(str(info[4][0]) for info in infos)


def _addresses(texts: Iterable[str]) -> list[IPAddress]:
    return [ipaddress.ip_address(text.split("%", 1)[0]) for text in texts]


class GuardedResolver(AbstractResolver):
    """aiohttp resolver for webhook deliveries: answers only addresses the policy allows."""

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._policy.allows_host(host):
            return results
        allowed = [r for r in results if self._policy.allows_address(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise OSError(f"webhook host {host!r} resolves only to addresses the policy refuses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
