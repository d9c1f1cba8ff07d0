"""Through the wizard's view to a running server, with a real Celery worker process doing the work
on the real broker (the filesystem transport on the SQLite pass, Redis on the PostgreSQL pass)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute.models import Instance, LaunchBatch, SimulatedServer
from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.worker


def _wait_for(check, timeout: float = 45.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_launch_stop_start_terminate_with_a_real_worker(celery_worker_process, client):
    load_demo_catalog()
    org = OrganizationFactory(slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(organization=org, slug="web")
    client.force_login(owner)
    started = time.monotonic()
    response = client.post(
        reverse("compute:launch", args=[org.slug, project.slug]),
        {
            "name": "web",
            "count": 2,
            "zone": Zone.objects.get(code="fra1-a").pk,
            "image": Image.objects.get(name="Debian 13").pk,
            "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
            "allow_all_inbound": "on",  # no firewall, confirmed
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    instances = Instance.objects.filter(project=project)
    assert sorted(instances.values_list("name", flat=True)) == ["web-1", "web-2"]

    _wait_for(lambda: all(i.status == "running" for i in instances.all()), what="both servers running")
    print(f"2 servers running {time.monotonic() - started:.1f} s after the launch request")
    assert all(i.addresses for i in instances.all())
    assert SimulatedServer.objects.filter(deleted=False).count() == 2  # one backend VM each, no duplicates
    _wait_for(lambda: LaunchBatch.objects.get().notified_at is not None, what="the launch e-mail")

    web1 = instances.get(name="web-1")
    action = reverse("compute:instance_action", args=[org.slug, project.slug, web1.pk])
    assert client.post(action, {"action": "stop"}).status_code == 302
    _wait_for(lambda: Instance.objects.get(pk=web1.pk).status == "stopped", what="stopped")
    assert client.post(action, {"action": "start"}).status_code == 302
    _wait_for(lambda: Instance.objects.get(pk=web1.pk).status == "running", what="running again")
    assert client.post(action, {"action": "terminate", "confirm_name": "web-1"}).status_code == 302
    _wait_for(lambda: Instance.objects.get(pk=web1.pk).status == "terminated", what="terminated")
    assert SimulatedServer.objects.filter(deleted=False).count() == 1
