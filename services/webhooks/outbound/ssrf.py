"""Where a customer's webhook may point: public HTTP(S) addresses only, checked when it is registered and
again right before every attempt (DNS answers change; a name that resolved to a public address yesterday
may resolve to 10.0.0.1 today).

A URL is refused when its scheme is not http or https, it carries credentials, or it has no host
(``InvalidWebhookUrl``); or when any address its host resolves to is loopback, private (RFC 1918, unique
local, site local), link-local, multicast, reserved, unspecified, shared (carrier-grade NAT, 100.64.0.0/10)
or otherwise not global, including such an IPv4 address embedded in IPv6 (IPv4-mapped, 6to4, NAT64,
Teredo) (``WebhookTargetForbidden``). Every address of a name must pass: a name with one public and one
private record would otherwise be a coin toss. A host written as numbers is read here the way the system
resolver (inet_aton) and browsers read it, not left to whichever resolver is plugged in: ``2852039166``,
``0xa9fea9fe``, ``0xa9.0xfe.0xa9.0xfe``, ``169.254.43518`` and ``169.254.169.254.`` are all 169.254.169.254;
a numeric host that is no address is malformed. (httpx itself refuses a dotted quad with leading zeros.)

``allow_private`` (development, tests) lifts the address checks except for two, refused in every mode
(reason ``metadata``, then ``link_local``), in any address or IPv6 embedding (the above, and also
IPv4-compatible ``::a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``, the Teredo server and every RFC 6052
position of the NAT64 local-use prefix) and for names resolving to them:

- cloud metadata and credential services (``METADATA``; who documents each is beside it), and the names
  ``metadata.google.internal`` and ``metadata`` (GCP), refused before any lookup;
- the whole link-local ranges 169.254.0.0/16 and fe80::/10, where clouds keep the rest of their
  per-host services (AWS time sync and DNS, Tencent Cloud metadata 169.254.0.23, OpenStack metadata
  fe80::a9fe:a9fe) and where no webhook receiver lives.

Kubernetes' API server (``kubernetes.default.svc``) is no metadata service and has no fixed address; in
production it is refused as the private address it resolves to.

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
# Cloud metadata and credential services, with who documents each.
METADATA = (
    # AWS EC2 IMDS, GCP, Azure IMDS, Oracle Cloud, DigitalOcean, Hetzner, OpenStack, Linode, ...
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("169.254.170.2/32"),  # AWS ECS task metadata and task-role credentials
    ipaddress.ip_network("169.254.170.23/32"),  # AWS EKS Pod Identity agent (credentials)
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS EC2 IMDS over IPv6 (Nitro)
    ipaddress.ip_network("fd00:ec2::23/128"),  # AWS EKS Pod Identity agent over IPv6
    ipaddress.ip_network("fd20:ce::254/128"),  # GCP metadata server for IPv6-only VMs
    # Azure wireserver (VM agent, extensions, platform DNS): a public-range address, so only this list
    # refuses it.
    ipaddress.ip_network("168.63.129.16/32"),
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud (Classic) metadata; global to ``ipaddress``
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud ECS metadata
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})  # GCP; "metadata" via its search domain
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
# Dot-separated labels of letters, digits, hyphens (not at either end) and underscores (found in the wild);
# an internationalised name arrives here IDNA-encoded (xn--...). A trailing dot (absolute name) is fine.
_HOST_NAME = re.compile(r"(?:(?!-)[a-z0-9_-]{1,63}(?<!-)\.)*(?!-)[a-z0-9_-]{1,63}(?<!-)\.?", re.IGNORECASE)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 is the last 32 bits
# RFC 8215 local-use prefix: the operator picks a prefix length, so the IPv4 may sit at any RFC 6052 place.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64_LOCAL_LENGTHS = (48, 56, 64, 96)  # RFC 6052 section 2.2 lengths within a /48
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 section 2.5.5.1, deprecated
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
# One part of an IPv4 address in inet_aton's syntax: hexadecimal, or decimal (octal with a leading 0).
_IPV4_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


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
    """The address ``host`` spells (IPv6 with its zone id, or IPv4 in any inet_aton form); None for a name.

    Raises:
        InvalidWebhookUrl: ``host`` is all numbers but no IPv4 address (``4294967296``, ``08.1``).
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.removesuffix(".").split(".")
    if not all(_IPV4_NUMBER.fullmatch(part) for part in parts):
        return None

    def malformed() -> InvalidWebhookUrl:
        return InvalidWebhookUrl(f"{host!r} is no IPv4 address", details={"reason": "malformed"})

    if len(parts) > 4:
        raise malformed()
    try:
        numbers = [
            int(part[2:] or "0", 16)
            if part[:2].lower() == "0x"
            else int(part, 8 if len(part) > 1 and part[0] == "0" else 10)
            for part in parts
        ]
    except ValueError as exc:  # an 8 or 9 in an octal part
        raise malformed() from exc
    *leading, last = numbers
    # Each leading part is one byte; the last fills the bytes left (169.254.43518: 43518 is two bytes).
    if any(n > 0xFF for n in leading) or last >= 1 << 8 * (4 - len(leading)):
        raise malformed()
    value = last
    for index, n in enumerate(leading):
        value |= n << 8 * (3 - index)
    return ipaddress.IPv4Address(value)


def _nat64_ipv4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address RFC 6052 places after a prefix of ``prefix_length`` bits."""
    if prefix_length == 96:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # Bits 64-71 (the "u" octet) are never part of the address: drop them, leaving 120 bits.
    packed = (int(ip) >> 64) << 56 | int(ip) & (1 << 56) - 1
    return ipaddress.IPv4Address(packed >> 120 - prefix_length - 32 & 0xFFFFFFFF)


def _carried_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a packet to ``ip`` reaches through a translator or tunnel."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # the server's and the (de-obfuscated) client's
    if ip in _NAT64:
        return (_nat64_ipv4(ip, 96),)
    if ip in _NAT64_LOCAL:
        return tuple(_nat64_ipv4(ip, length) for length in _NAT64_LOCAL_LENGTHS)
    return ()


def _readable_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address that can be read out of ``ip``: the carried ones, and those of the deprecated
    forms some stacks still route (IPv4-compatible, IPv4-translated)."""
    if ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    return _carried_ipv4(ip)


def forbidden_reason(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a webhook may not be sent to ``ip``, as a stable word; None when it may."""
    readable: tuple[IPAddress, ...] = (
        (ip, *_readable_ipv4(ip)) if isinstance(ip, ipaddress.IPv6Address) else (ip,)
    )
    if any(address in network for address in readable for network in METADATA):
        return "metadata"
    if any(address.is_link_local for address in readable):
        return "link_local"
    if allow_private:
        return None
    if ip in _NAT64_LOCAL:
        return "private"  # RFC 8215: a network's own translator, never globally routed
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _carried_ipv4(ip)
        if carried:
            return next(filter(None, (forbidden_reason(address) for address in carried)), None)
    # Most specific first: 0.0.0.0 and 127.0.0.1 are "private" to ipaddress too.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
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
    if host.lower().removesuffix(".") in METADATA_NAMES:
        raise WebhookTargetForbidden(f"{host} is a cloud metadata service", reason="metadata")
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
