"""CSV documents with a content hash that anybody can check.

A document's canonical serialisation is its CSV text (UTF-8, "\\n" line ends) up to, not
including, its last line; the last line carries the SHA-256 of that text:

    head -n -1 statement.csv | sha256sum

prints the same hex digest as the last line (and as the HTML page). Nothing in the hashed text
depends on when or by whom it was downloaded, so the same document downloaded twice hashes the
same.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from datetime import UTC, datetime

HASH_LABEL = "SHA-256 of all lines above"
# Cells a spreadsheet would run as a formula; names come from customers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_hash_line(body: str, digest: str | None = None) -> str:
    return body + csv_text([[HASH_LABEL, digest or sha256_hex(body)]])


def iso(moment: datetime | None) -> str:
    """UTC, to the second, with a Z: the one way times are written in documents."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement_csv_body(statement) -> str:
    """The canonical text of a statement (closed or preview); a closed one's hash is over this."""
    if statement.is_final:
        status = ["Status", "closed", iso(statement.closed_at)]
    else:
        status = ["Status", "preview, not final", f"as of {iso(statement.as_of)}"]
    lines = sorted(
        statement_lines(statement), key=lambda line: (line.project_name, line.project_id, line.meter)
    )
    rows = [
        ["Statement", statement.organization_name],
        ["Month", f"{statement.month:%Y-%m}"],
        ["Currency", statement.currency],
        status,
        [],
        ["Project", "Meter", "Unit", "Quantity", "Cost"],
        *(
            [line.project_name, line.meter, line.unit, f"{line.quantity_hours:.4f}", f"{line.cost:.6f}"]
            for line in lines
        ),
        ["Total", "", "", "", f"{statement.total:.2f}"],
    ]
    return csv_text(rows)


def statement_lines(statement) -> list:
    """A stored statement's lines (a related manager) or a draft's (a list)."""
    lines = statement.lines
    return list(lines.all()) if hasattr(lines, "all") else list(lines)
