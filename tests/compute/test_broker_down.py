"""The broker can be down while the database is up: work is saved, the customer is not shown an
error for a launch that will happen, and the reconciler enqueues it once the broker is back."""

from __future__ import annotations

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from portal.compute.models import Instance, Operation
from portal.compute.tasks import operations_advance, reconcile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(operations_advance, "delay", refuse)


def test_a_launch_while_the_broker_is_down_is_saved_and_answered(
    broker_down, access, catalog, knobs, client_as, owner, project
):
    url = reverse("compute:launch", args=[project.organization.slug, project.slug])
    response = client_as(owner).post(
        url,
        {
            "name": "web",
            "count": 2,
            "zone": catalog["fra1-a"].pk,
            "flavor": catalog["fra1-a"].flavors.order_by("vcpus").first().pk,
            "image": catalog["fra1-a"].images.first().pk,
            "allow_all_inbound": "on",
        },
    )
    assert response.status_code in (200, 302), response.content[:500]
    assert Instance.objects.filter(project=project).count() == 2
    assert Operation.objects.filter(instance__project=project, action="create").count() == 2


def test_the_reconciler_releases_its_claim_when_the_broker_is_down(broker_down, launch):
    from datetime import timedelta

    from django.utils import timezone

    op = Operation.objects.get(instance__batch=launch())
    Operation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    reconcile()  # the beat task: claims the lost work, cannot send it
    op.refresh_from_db()
    assert op.next_check_at is None  # the next run tries again
