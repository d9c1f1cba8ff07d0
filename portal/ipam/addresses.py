"""Address arithmetic for the pools, with no database: parse what an operator typed, and find the
lowest address that nobody holds. Addresses are handled as integers and ranges as inclusive
(first, last) pairs, so a /64 costs no more than a /28."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Range = tuple[int, int]
MAX_PREFIX = {4: 32, 6: 128}


def parse_network(text: str, family: int | None) -> tuple[Network | None, str]:
    """The network an operator typed, or None and why not in plain words."""
    text = (text or "").strip()
    if not text:
        return None, "Enter a network such as 203.0.113.0/24 or 2001:db8:10::/64."
    if "/" not in text:
        return None, f"Give the prefix length too, e.g. {text}/24."
    address, _, prefix = text.partition("/")
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None, f"“{address}” is not an IPv4 or IPv6 address."
    if not prefix.isdigit():
        return None, f"“/{prefix}” is not a prefix length."
    if int(prefix) > MAX_PREFIX[version]:
        return None, f"An IPv{version} prefix is at most /{MAX_PREFIX[version]}; /{prefix} does not exist."
    if int(prefix) == 0:
        return None, "A /0 is every address there is, not a pool."
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        loose = ipaddress.ip_network(text, strict=False)
        return None, f"{text} has host bits set: did you mean {loose}?"
    if family and network.version != family:
        return None, f"{network} is an IPv{network.version} network, but the pool is IPv{family}."
    return network, ""


def parse_reserved(text: str, network: Network) -> tuple[list[Range], list[str]]:
    """The reserved ranges, one a line: an address, `first-last`, or a network. Each bad line is
    named in the errors (all of them, not just the first)."""
    ranges, errors = [], []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found, error = _parse_range(line, network)
        if error:
            errors.append(f"Line {number}: {error}")
        else:
            ranges.append(found)
    return ranges, errors


def _parse_range(line: str, network: Network) -> tuple[Range, str]:
    if "/" in line:
        try:
            part = ipaddress.ip_network(line, strict=False)
        except ValueError:
            return (0, 0), f"“{line}” is not a network."
        first, last = int(part.network_address), int(part.broadcast_address)
        version = part.version
    else:
        ends = [end.strip() for end in line.split("-", 1)] if "-" in line else [line, line]
        try:
            first_address, last_address = (ipaddress.ip_address(end) for end in ends)
        except ValueError:
            return (0, 0), f"“{line}” is not an address, a range first-last, or a network."
        if first_address.version != last_address.version:
            return (0, 0), f"“{line}” mixes IPv4 and IPv6."
        first, last, version = int(first_address), int(last_address), first_address.version
        if last < first:
            return (0, 0), f"the range {line} ends before it starts."
    if version != network.version:
        return (0, 0), f"{line} is IPv{version}; the pool is IPv{network.version}."
    if first < int(network.network_address) or last > int(network.broadcast_address):
        return (0, 0), f"{line} is not inside {network}."
    return (first, last), ""


def never_handed_out(network: Network, gateway: str | None, reserved: Iterable[Range]) -> list[Range]:
    """What a pool never gives a server: the network address (in IPv6 the subnet-router anycast),
    the IPv4 broadcast, the gateway and the reserved ranges."""
    first, last = int(network.network_address), int(network.broadcast_address)
    out = list(reserved)
    if network.prefixlen < MAX_PREFIX[network.version] - 1:  # a /31 or /127 uses both (RFC 3021, 6164)
        out.append((first, first))
        if network.version == 4:
            out.append((last, last))
    if gateway:
        out.append((int(ipaddress.ip_address(gateway)),) * 2)
    return out


def merged(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def lowest_free(network: Network, excluded: Iterable[Range]) -> str | None:
    """The lowest address of the network outside every excluded range, or None when there is none."""
    candidate, last = int(network.network_address), int(network.broadcast_address)
    for first, end in merged(excluded):
        if first > candidate:
            break
        candidate = max(candidate, end + 1)
    if candidate > last:
        return None
    return str(ipaddress.ip_address(candidate))


def usable_count(network: Network, excluded: Iterable[Range]) -> int:
    """How many addresses of the network a pool can hand out at all."""
    first, last = int(network.network_address), int(network.broadcast_address)
    inside = sum(
        min(end, last) - max(start, first) + 1
        for start, end in merged(excluded)
        if end >= first and start <= last
    )
    return network.num_addresses - inside


def as_range(address: str) -> Range:
    value = int(ipaddress.ip_address(address))
    return value, value
