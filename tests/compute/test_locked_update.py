"""A conditional UPDATE of servers locked first, `select_for_update().filter(…).update(…)`: the
claim a worker makes when it must hold the rows before it decides.

PostgreSQL refused it ("FOR UPDATE is not allowed with DISTINCT clause") while the servers'
queryset looked up the projects of the rows it was about to update with a DISTINCT query that kept
the lock clause. The update must simply happen, and show on the next page load."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.urls import reverse

from portal.compute.models import Instance
from tests.factories import InstanceFactory, ProjectFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL-specific: it refuses FOR UPDATE with DISTINCT; on SQLite Django sends no "
    "FOR UPDATE at all, so the failure cannot happen there",
)


def _claim(**rows) -> int:
    with transaction.atomic():
        return Instance.objects.select_for_update().filter(status="running", **rows).update(status="stopping")


def test_a_locked_conditional_update_happens_once_and_shows(project, owner, client_as, catalog):
    server = InstanceFactory(project=project, status="running")
    assert _claim(pk=server.pk) == 1
    assert _claim(pk=server.pk) == 0  # the condition no longer holds: the second claim gets nothing
    page = client_as(owner).get(
        reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    )
    assert 'class="status status-stopping"' in page.content.decode()


def test_a_locked_update_across_projects(project, catalog):
    other = ProjectFactory(organization=project.organization, slug="other")
    servers = [InstanceFactory(project=p, status="running") for p in (project, other, other)]
    assert _claim(project__organization=project.organization) == 3
    assert set(Instance.objects.filter(pk__in=[s.pk for s in servers]).values_list("status", flat=True)) == {
        "stopping"
    }
