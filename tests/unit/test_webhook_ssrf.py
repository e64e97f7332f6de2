"""Where outbound webhooks may go: URL shape, every address form, resolution through a (fake) resolver."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import cast

import pytest

from services.webhooks.outbound.ssrf import (
    InvalidWebhookUrl,
    Resolver,
    WebhookTargetForbidden,
    check_target,
    forbidden_reason,
    system_resolve,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),  # deprecated site-local
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "shared_address"),
        ("100.127.255.254", "shared_address"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # TEST-NET-1
        ("198.18.0.1", "private"),  # benchmarking
        ("2001:db8::1", "private"),  # documentation
        # IPv4 inside IPv6: judged by the IPv4 address.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:100.64.0.1", "shared_address"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("2002:a9fe:a9fe::", "metadata"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"]
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", None),
        ("10.0.0.1", None),
        ("::1", None),
        ("100.64.0.1", None),
        ("169.254.169.254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
    ],
)
def test_allowing_private_targets_still_refuses_metadata(address: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(address), allow_private=True) == reason


def _resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com./x", "http://under_score.example.com/", "https://bücher.example/"]
)
async def test_host_names_of_the_usual_forms_pass(url: str) -> None:
    resolve = _resolver(
        {
            "hooks.example.com.": ["93.184.216.34"],
            "under_score.example.com": ["93.184.216.34"],
            "xn--bcher-kva.example": ["93.184.216.34"],
        }
    )
    target = await check_target(url, allow_private=False, resolve=resolve)
    assert [str(a) for a in target.addresses] == ["93.184.216.34"]


async def test_a_name_resolving_to_public_addresses_passes_and_keeps_them_for_the_connection() -> None:
    resolve = _resolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::248", "93.184.216.34"]})
    target = await check_target("https://hooks.example.com/in?x=1", allow_private=False, resolve=resolve)
    assert target.host == "hooks.example.com"
    assert target.port == 443
    assert [str(a) for a in target.addresses] == ["93.184.216.34", "2606:2800:220:1::248"]


async def test_one_private_record_among_public_ones_refuses_the_name() -> None:
    resolve = _resolver({"mixed.example.com": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target("http://mixed.example.com/", allow_private=False, resolve=resolve)
    assert refused.value.reason == "private"
    assert refused.value.details == {"reason": "private", "address": "10.0.0.7"}


async def test_a_name_rebound_to_a_private_address_is_refused() -> None:
    resolve = _resolver({"rebind.example.com": ["169.254.169.254"]})
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target("http://rebind.example.com/", allow_private=True, resolve=resolve)
    assert refused.value.reason == "metadata"


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target("https://nowhere.example/", allow_private=False, resolve=_resolver({}))
    assert refused.value.reason == "unresolvable"
    assert refused.value.code == "webhook_target_forbidden"


async def test_a_resolver_that_hangs_is_cut_off() -> None:
    async def hang(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(10)
        return []

    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target("https://slow.example/", allow_private=False, resolve=hang, timeout_s=0.05)
    assert refused.value.reason == "unresolvable"


async def test_a_scoped_link_local_answer_is_refused() -> None:
    resolve = _resolver({"scoped.example": ["fe80::1%eth0"]})
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target("http://scoped.example/", allow_private=False, resolve=resolve)
    assert refused.value.reason == "link_local"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("not a url", "scheme"),
        ("//example.com/x", "scheme"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("http:///path", "no_host"),
        ("http://exa mple.com/", "malformed"),
        ("http://-example.com/", "malformed"),
        ("http://a..b/", "malformed"),
        ("http://a%2fb.example/", "malformed"),
        ("http://0177.0.0.1/", "malformed"),  # httpx refuses leading zeros in a dotted quad
        ("https://example.com/" + "a" * 2000, "too_long"),
    ],
)
async def test_urls_of_the_wrong_shape_are_refused_before_any_lookup(url: str, reason: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as refused:
        await check_target(url, allow_private=False, resolve=_resolver({}))
    assert refused.value.code == "invalid_webhook_url"
    assert refused.value.details == {"reason": reason}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[0:0:0:0:0:ffff:169.254.169.254]/", "metadata"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.0.0.1/", "private"),
        ("http://0.0.0.0:80/", "unspecified"),
    ],
)
async def test_address_literals_are_judged_without_a_lookup(url: str, reason: str) -> None:
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target(url, allow_private=False, resolve=_resolver({}))
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",  # ... as one hexadecimal number
        "017700000001",  # ... as one octal number
        "0x7f.1",
        "127.1",
        "localhost",
    ],
)
async def test_odd_forms_of_loopback_are_read_as_the_system_resolver_reads_them(host: str) -> None:
    try:
        resolved = await system_resolve(host, 80)
    except OSError:
        pytest.skip(f"this system's resolver does not accept {host!r}")
    assert resolved
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target(f"http://{host}/hook", allow_private=False)
    assert refused.value.reason == "loopback"
    target = await check_target(f"http://{host}/hook", allow_private=True)
    assert all(a.is_loopback for a in target.addresses)


# Cloud metadata and credential services, as their providers document them. Refused in every form, in
# production and with SPAREFLOW_WEBHOOKS_ALLOW_PRIVATE_TARGETS alike.
METADATA_IPV4 = [
    "169.254.169.254",  # AWS IMDS, GCP, Azure IMDS, Oracle Cloud, DigitalOcean, Hetzner, OpenStack
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # AWS EKS Pod Identity agent
    "168.63.129.16",  # Azure wireserver (a public-range address)
    "192.0.0.192",  # Oracle Cloud
    "100.100.100.200",  # Alibaba Cloud
]
METADATA_IPV6 = [
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    "fd20:ce::254",  # GCP, IPv6-only VMs
]


def _ipv4_forms(dotted: str) -> list[str]:
    """Every way a URL can spell one IPv4 address (the host part; IPv6 forms in brackets)."""
    ip = ipaddress.IPv4Address(dotted)
    number = int(ip)
    a, b, c, d = ip.packed
    low = f"{number >> 16:x}:{number & 0xFFFF:x}"
    teredo_client = f"{~number >> 16 & 0xFFFF:x}:{~number & 0xFFFF:x}"
    return [
        dotted,
        f"{dotted}.",  # absolute name
        str(number),  # one decimal number
        f"{number:#x}",
        f"{number:#X}",  # upper case
        f"0{number:o}",  # one octal number
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}.",  # dotted octal (without the dot httpx refuses it: below)
        f"{a}.{b}.{c << 8 | d}",  # short forms: the last part fills the remaining bytes
        f"{a}.{b << 16 | c << 8 | d}",
        f"[::ffff:{dotted}]",  # IPv4-mapped
        f"[::ffff:{low}]",
        f"[::FFFF:{low.upper()}]",
        f"[0:0:0:0:0:ffff:{dotted}]",
        f"[::ffff:{dotted}%25eth0]",  # with a zone id
        f"[::{dotted}]",  # IPv4-compatible (deprecated)
        f"[::{low}]",
        f"[::ffff:0:{dotted}]",  # IPv4-translated (RFC 2765)
        f"[64:ff9b::{low}]",  # NAT64, well-known prefix
        f"[64:ff9b:1::{low}]",  # NAT64, local-use prefix as a /96
        f"[64:ff9b:1:{a:02x}{b:02x}:{c:02x}:{d:02x}00::]",  # ... as a /56 (RFC 6052 skips bits 64-71)
        f"[2002:{low}::]",  # 6to4
        f"[2002:{low}:1:2:3:4:5]",
        f"[2001:0:4136:e378:8000:63bf:{teredo_client}]",  # Teredo client (obfuscated)
        f"[2001:0:{low}::1]",  # Teredo server
    ]


def _ipv6_forms(address: str) -> list[str]:
    ip = ipaddress.IPv6Address(address)
    return [f"[{ip.compressed}]", f"[{ip.exploded}]", f"[{ip.compressed.upper()}]", f"[{ip}%25eth0]"]


METADATA_HOSTS = [
    *[(form, address) for address in METADATA_IPV4 for form in _ipv4_forms(address)],
    *[(form, address) for address in METADATA_IPV6 for form in _ipv6_forms(address)],
]
LINK_LOCAL_HOSTS = [
    "169.254.0.1",
    "169.254.255.254",
    "169.254.169.123",  # AWS time sync
    "169.254.0.23",  # Tencent Cloud metadata
    f"169.{254 << 16 | 1}",
    str(int(ipaddress.IPv4Address("169.254.0.1"))),
    "[::ffff:169.254.7.7]",
    "[fe80::1]",
    "[fe80::a9fe:a9fe]",  # OpenStack metadata over IPv6
    "[FE80::A9FE:A9FE%25eth0]",
    "[febf:ffff::1]",
    "[64:ff9b::a9fe:101]",
]


async def _verdict(url: str, *, allow_private: bool, resolve: Resolver | None = None) -> str:
    """The reason ``url`` is refused, or "accepted"."""
    try:
        await check_target(url, allow_private=allow_private, resolve=resolve or _resolver({}))
    except WebhookTargetForbidden as exc:
        return exc.reason
    except InvalidWebhookUrl as exc:
        return f"invalid_webhook_url:{cast(dict[str, str], exc.details)['reason']}"
    return "accepted"


@pytest.mark.parametrize("allow_private", [False, True], ids=["production", "allow_private"])
@pytest.mark.parametrize(("host", "address"), METADATA_HOSTS)
async def test_metadata_addresses_are_refused_in_every_form_and_mode(
    host: str, address: str, allow_private: bool
) -> None:
    assert await _verdict(f"http://{host}/latest/meta-data/", allow_private=allow_private) == "metadata"


@pytest.mark.parametrize("allow_private", [False, True], ids=["production", "allow_private"])
@pytest.mark.parametrize("host", LINK_LOCAL_HOSTS)
async def test_link_local_addresses_are_refused_in_every_mode(host: str, allow_private: bool) -> None:
    # Clouds keep their metadata, DNS, time and credential services in the link-local ranges.
    assert await _verdict(f"http://{host}/", allow_private=allow_private) == "link_local"


@pytest.mark.parametrize("address", METADATA_IPV4[:1])
async def test_dotted_octal_is_refused_as_malformed(address: str) -> None:
    a, b, c, d = ipaddress.IPv4Address(address).packed
    url = f"http://0{a:o}.0{b:o}.0{c:o}.0{d:o}/"
    assert await _verdict(url, allow_private=True) == "invalid_webhook_url:malformed"


@pytest.mark.parametrize("allow_private", [False, True], ids=["production", "allow_private"])
@pytest.mark.parametrize(
    "answer", [*METADATA_IPV4, *METADATA_IPV6, "::ffff:169.254.169.254", "fd00:ec2::254%eth0", "fe80::1%eth0"]
)
async def test_names_resolving_to_metadata_or_link_local_addresses_are_refused(
    answer: str, allow_private: bool
) -> None:
    resolve = _resolver({"hooks.example.com": ["93.184.216.34", answer]})
    verdict = await _verdict("https://hooks.example.com/", allow_private=allow_private, resolve=resolve)
    assert verdict == ("link_local" if answer.startswith("fe80") else "metadata")


@pytest.mark.parametrize("allow_private", [False, True], ids=["production", "allow_private"])
@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata"])
async def test_metadata_host_names_are_refused_before_any_lookup(host: str, allow_private: bool) -> None:
    # Off GCP they do not resolve; on it, a poisoned or search-domain answer must not decide.
    assert await _verdict(f"http://{host}/computeMetadata/v1/", allow_private=allow_private) == "metadata"


@pytest.mark.parametrize(
    # Not the absolute forms (a trailing dot): glibc looks those up as names, browsers read them as numbers.
    "host",
    sorted({host for host, _ in METADATA_HOSTS if not host.startswith("[") and not host.endswith(".")}),
)
async def test_numeric_hosts_are_read_as_the_system_resolver_reads_them(host: str) -> None:
    # The guard reads these itself (a resolver that does not know them cannot let them through); the
    # reading must be the one the connection would get.
    try:
        resolved = await system_resolve(host, 80)
    except OSError:
        pytest.skip(f"this system's resolver does not accept {host!r}")
    with pytest.raises(WebhookTargetForbidden) as refused:
        await check_target(f"http://{host}/", allow_private=True, resolve=_resolver({}))
    assert cast(dict[str, str], refused.value.details)["address"] in resolved


@pytest.mark.parametrize("host", ["4294967296", "1.16777216", "0x1.0x2.0x3.0x100", "08.1", "1.2.3.4.5"])
async def test_numbers_that_are_no_ipv4_address_are_malformed(host: str) -> None:
    assert await _verdict(f"http://{host}/", allow_private=True) == "invalid_webhook_url:malformed"
