from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from portal.metering.selectors import month_bounds


@pytest.fixture
def last_month() -> tuple[datetime, datetime]:
    """[start, end) of the previous calendar month: a complete, final period."""
    this_month, _ = month_bounds(timezone.now())
    return month_bounds(this_month - timedelta(days=1))
