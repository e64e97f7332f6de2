"""Where a customer's webhook may point: public HTTP(S) addresses only, checked when it is registered and
again right before every attempt (DNS answers change; a name that resolved to a public address yesterday
may resolve to 10.0.0.1 today).

A URL is refused when its scheme is not http or https, it carries credentials, or it has no host
(``InvalidWebhookUrl``); or when any address its host resolves to is loopback, private (RFC 1918, unique
local, site local), link-local, multicast, reserved, unspecified, shared (carrier-grade NAT, 100.64.0.0/10)
or otherwise not global, including such an IPv4 address embedded in IPv6 (IPv4-mapped, IPv4-compatible,
6to4, NAT64, Teredo) (``WebhookTargetForbidden``). Every address of a name must pass: a name with one
public and one private record would otherwise be a coin toss. Resolution goes through the system resolver,
so the odd forms it accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are judged by what they resolve
to. ``allow_private`` (development, tests) lifts the address checks except for cloud metadata services,
which no webhook has a reason to reach.

The sender connects to an address checked here, not to a second resolution (see ``sender``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from services.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_S = 5.0
METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
# Dot-separated labels of letters, digits, hyphens (not at either end) and underscores (found in the wild);
# an internationalised name arrives here IDNA-encoded (xn--...). A trailing dot (absolute name) is fine.
_HOST_NAME = re.compile(r"(?:(?!-)[a-z0-9_-]{1,63}(?<!-)\.)*(?!-)[a-z0-9_-]{1,63}(?<!-)\.?", re.IGNORECASE)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))  # RFC 6052, 8215


class InvalidWebhookUrl(InvalidRequest):
    code = "invalid_webhook_url"


class WebhookTargetForbidden(InvalidRequest):
    code = "webhook_target_forbidden"

    def __init__(self, message: str, *, reason: str, address: str | None = None) -> None:
        super().__init__(message, details={"reason": reason, "address": address})
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL
    host: str  # as sent in Host and SNI (IDNA-encoded)
    port: int
    addresses: tuple[IPAddress, ...]  # every one checked; connect to these, not to a fresh resolution


def parse_url(url: str) -> httpx.URL:
    """The URL if its shape is acceptable; raises InvalidWebhookUrl (reason in ``details``)."""

    def refuse(reason: str, message: str) -> InvalidWebhookUrl:
        return InvalidWebhookUrl(message, details={"reason": reason})

    if len(url) > MAX_URL_LENGTH:
        raise refuse("too_long", f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise refuse("malformed", f"not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise refuse("scheme", "a webhook URL is http:// or https://")
    if parsed.userinfo:
        raise refuse("credentials", "a webhook URL may not carry credentials; authenticate by the signature")
    if not parsed.host:
        raise refuse("no_host", "a webhook URL needs a host")
    host = parsed.raw_host.decode("ascii")
    if _ip_literal(host) is None and not _HOST_NAME.fullmatch(host):
        raise refuse("malformed", f"{host!r} is not a host name")
    return parsed


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a webhook may not be sent to ``ip``, as a stable word; None when it may."""
    if ip in METADATA:
        return "metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return forbidden_reason(embedded, allow_private=allow_private)
    if allow_private:
        return None
    # Most specific first: 0.0.0.0 and 127.0.0.1 are "private" to ipaddress too.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared_address"
    if ip.is_reserved:  # 240.0.0.0/4, ::/8 (IPv4-compatible addresses among them), ...
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "private"
    if not ip.is_global:
        return "not_global"
    return None


async def system_resolve(host: str, port: int) -> Sequence[str]:
    """Every address the system resolver gives for ``host`` (in the loop's executor: it blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_target(
    url: str,
    *,
    allow_private: bool,
    resolve: Resolver = system_resolve,
    timeout_s: float = RESOLVE_TIMEOUT_S,
) -> Target:
    """Parse ``url``, resolve its host and check every address.

    Raises:
        InvalidWebhookUrl: not an http(s) URL with a host and without credentials.
        WebhookTargetForbidden: the host does not resolve, or resolves to an address refused above.
    """
    parsed = parse_url(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is not None:
        found: Sequence[str] = [str(literal)]
    else:
        try:
            async with asyncio.timeout(timeout_s):
                found = await resolve(host, port)
        except (OSError, UnicodeError, TimeoutError) as exc:
            raise WebhookTargetForbidden(
                f"{host} does not resolve: {exc}", reason="unresolvable", address=None
            ) from exc
    addresses: list[IPAddress] = []
    for text in found:
        # A scoped IPv6 address (fe80::1%eth0) is link-local in any case; the scope is not an address.
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        reason = forbidden_reason(ip, allow_private=allow_private)
        if reason is not None:
            where = f"{ip} is" if literal is not None else f"{host} resolves to {ip},"
            raise WebhookTargetForbidden(
                f"{where} a {reason.replace('_', ' ')} address: webhooks go to public addresses only",
                reason=reason,
                address=str(ip),
            )
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise WebhookTargetForbidden(f"{host} does not resolve", reason="unresolvable")
    return Target(url=parsed, host=host, port=port, addresses=tuple(addresses))
