"""One row of every API model with an admin page, for tests/core/test_admin.py."""

from __future__ import annotations

from tests.api.conftest import make_token


def api_admin_rows(project, owner) -> None:
    make_token(owner, project.organization, project=project, name="admin-page")
