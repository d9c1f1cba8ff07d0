"""What a refused request is made of, outside the services package so that code the beat tasks
import (snapshot_rules.py) can say it too; services.common re-exports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One rule a request breaks: the field it is about (None: the request as a whole), what to
    tell the customer, and the status it alone would be answered with."""

    field: str | None
    message: str
    status: int = 400
