"""Reverse DNS (PTR) names for servers' public addresses.

The portal does not run DNS: customers set the name their server's address should resolve back to,
the portal checks it is a proper host name, and operators export every name for their DNS servers
from admin (`ptr_records`, as JSON or as a zone file, `zone_file`). A name follows its server: when
the server's address changes the export gives the new address, and a terminated server is not in it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

MAX_NAME_LENGTH = 253  # RFC 1035: 255 octets on the wire, 253 characters written
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize(name: str) -> str:
    """The name as stored: trimmed, lower case, without the root's trailing dot."""
    return name.strip().lower().removesuffix(".")


def name_problems(name: str) -> list[str]:
    """Everything wrong with a reverse DNS name (already normalized), in the customer's words."""
    if not name:
        return []
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(f"A host name has at most {MAX_NAME_LENGTH} characters (this one has {len(name)}).")
    labels = name.split(".")
    if len(labels) < 2:
        problems.append("Give a full host name with its domain, such as web-1.example.com.")
    bad = [label for label in labels if not LABEL.match(label)]
    if bad:
        problems.append(
            "Each part between dots is 1 to 63 letters, digits or hyphens, not starting or ending with "
            f"a hyphen: {', '.join(repr(label) for label in bad[:3])} is not."
        )
    elif labels[-1].isdigit():
        problems.append("The last part of a host name is not a number: that is an address, not a name.")
    return problems


@dataclass(frozen=True)
class PtrRecord:
    address: str
    pointer: str  # the reverse zone's name of the address, e.g. 10.113.0.203.in-addr.arpa
    name: str
    server: str
    project: str
    organization: str
    zone: str


def ptr_records(instances) -> list[PtrRecord]:
    """One record per server with a reverse DNS name and a public address, sorted by address."""
    records = []
    for instance in instances:
        if not instance.reverse_dns or not instance.public_address:
            continue
        try:
            address = ipaddress.ip_address(instance.public_address)
        except ValueError:
            continue
        records.append(
            PtrRecord(
                address=str(address),
                pointer=address.reverse_pointer,
                name=instance.reverse_dns,
                server=str(instance.pk),
                project=instance.project.slug,
                organization=instance.project.organization.slug,
                zone=instance.zone.code,
            )
        )
    return sorted(
        records, key=lambda record: (record.address.count(":"), ipaddress.ip_address(record.address).packed)
    )


def zone_file(records: list[PtrRecord], *, generated_at: datetime, ttl: int = 3600) -> str:
    """The records as zone-file lines (RFC 1035 master file), absolute names, one PTR each."""
    lines = [
        f"; reverse DNS of the portal's servers, exported {generated_at:%Y-%m-%d %H:%M} UTC",
        f"$TTL {ttl}",
    ]
    for record in records:
        lines.append(
            f"{record.pointer}. IN PTR {record.name}. ; {record.organization}/{record.project} {record.server}"
        )
    return "\n".join(lines) + "\n"
