"""The shape of the inbound rules `apply_firewall` takes and `server_firewall` answers.

A rule is a dict: `protocol` ("tcp", "udp", "icmp" or "any"), `port_from` and `port_to` (1-65535,
for TCP and UDP only; None otherwise) and `source` (a network, "203.0.113.7/32" or "::/0"). Its
family is its source's. A server without a portal firewall gets `ALL_INBOUND`: what a launch
without a firewall has always had. `()` drops all inbound traffic.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable

from portal.compute.backends.base import Rejected

PROTOCOLS = ("tcp", "udp", "icmp", "any")
ALL_INBOUND: tuple[dict, ...] = (
    {"protocol": "any", "port_from": None, "port_to": None, "source": "0.0.0.0/0"},
    {"protocol": "any", "port_from": None, "port_to": None, "source": "::/0"},
)
INVALID = "A firewall rule of this server is not valid; check its ports and source address."


def checked(rule: dict) -> dict:
    """The rule in its one normal form (ports of a single port filled in, the source's network
    address), or Rejected as a cloud refuses a rule it cannot take."""
    try:
        protocol = str(rule.get("protocol") or "").lower()
        source = ipaddress.ip_network(str(rule.get("source") or "").strip(), strict=False)
        low, high = rule.get("port_from"), rule.get("port_to")
    except (ValueError, AttributeError, TypeError) as error:
        raise Rejected(INVALID, f"rule {rule!r}: {error}") from None
    if protocol not in PROTOCOLS:
        raise Rejected(INVALID, f"rule {rule!r}: protocol {protocol!r}")
    if protocol in ("tcp", "udp"):
        high = low if high is None else high
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 65535):
            raise Rejected(INVALID, f"rule {rule!r}: ports {low}-{high}")
    elif low is not None or high is not None:
        raise Rejected(INVALID, f"rule {rule!r}: {protocol} has no ports")
    return {"protocol": protocol, "port_from": low, "port_to": high, "source": str(source)}


def normal(rules: Iterable[dict]) -> list[dict]:
    """Checked, without duplicates, in a fixed order: two lists of rules that mean the same
    compare equal."""
    unique = {json.dumps(checked(rule), sort_keys=True) for rule in rules}
    return [json.loads(key) for key in sorted(unique)]


def same_rules(a: Iterable[dict] | None, b: Iterable[dict] | None) -> bool:
    if a is None or b is None:
        return a is b
    return normal(a) == normal(b)


def rules_hash(rules: Iterable[dict]) -> str:
    """A short fingerprint of what the rules mean (the version the portal records as applied)."""
    return hashlib.sha256(json.dumps(normal(rules), sort_keys=True).encode()).hexdigest()[:16]
