"""A closed statement with a line, for tests that open every admin page (tests/core/test_admin.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from portal.statements.services import statement_close
from tests.statements.helpers import make_segment


def statement_admin_rows(project) -> None:
    from portal.catalog.models import Zone

    start = datetime(2026, 3, 1, tzinfo=UTC)
    make_segment(project, Zone.objects.get(code="fra1-a"), start=start, end=start + timedelta(days=2))
    statement_close(
        organization=project.organization, month=date(2026, 3, 1), now=datetime(2026, 4, 1, tzinfo=UTC)
    )
