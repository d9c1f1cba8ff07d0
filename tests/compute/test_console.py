"""The serial console on a server's page: what the cloud reports, or a plain reason why not."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.compute.backends import Transient
from portal.compute.backends.simulated import SimulatedBackend
from portal.compute.models import Instance, Operation
from tests.steps import drive

pytestmark = pytest.mark.django_db


def _running(launch):
    batch = launch(name="web-1")
    op = Operation.objects.get(instance__batch=batch)
    drive(op)
    return Instance.objects.get(batch=batch)


def _url(instance):
    project = instance.project
    return reverse("compute:instance_console", args=[project.organization.slug, project.slug, instance.pk])


def test_console_shows_the_boot_and_login_prompt(launch, client_as, viewer):
    instance = _running(launch)
    detail = client_as(viewer).get(
        reverse(
            "compute:instance_detail",
            args=[instance.project.organization.slug, instance.project.slug, instance.pk],
        )
    )
    assert 'hx-get="' + _url(instance) in detail.content.decode()
    fragment = client_as(viewer).get(_url(instance), headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert fragment.status_code == 200
    assert "web-1 login:" in text and "<html" not in text
    page = client_as(viewer).get(_url(instance))  # without JavaScript: a page of its own
    assert "<html" in page.content.decode() and "web-1 login:" in page.content.decode()


def test_console_of_a_server_not_yet_in_the_cloud_says_so(launch, client_as, owner):
    instance = Instance.objects.get(batch=launch())
    response = client_as(owner).get(_url(instance), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "not in the cloud" in response.content.decode()


def test_console_when_the_cloud_is_busy_is_a_503_with_a_reason(launch, client_as, owner, monkeypatch):
    instance = _running(launch)

    def busy(self, backend_id):
        raise Transient("The cloud is busy; we will retry.", "timeout")

    monkeypatch.setattr(SimulatedBackend, "console_output", busy)
    response = client_as(owner).get(_url(instance), headers={"HX-Request": "true"})
    assert response.status_code == 503
    assert "The cloud is busy" in response.content.decode()


def test_console_output_is_escaped(launch, client_as, owner, monkeypatch):
    instance = _running(launch)
    monkeypatch.setattr(SimulatedBackend, "console_output", lambda self, _id: "<script>alert(1)</script>")
    body = client_as(owner).get(_url(instance), headers={"HX-Request": "true"}).content.decode()
    assert "<script>alert" not in body and "&lt;script&gt;" in body


def _detail(instance):
    project = instance.project
    return reverse("compute:instance_detail", args=[project.organization.slug, project.slug, instance.pk])


def test_the_console_appears_in_the_live_region_once_the_server_is_in_the_cloud(launch, client_as, owner):
    """The page polls its live region while the server changes: the console has to be in it, or a
    page opened while the server boots never shows it without a reload."""
    instance = Instance.objects.get(batch=launch(name="web-1"))
    client = client_as(owner)
    poll = {"headers": {"HX-Request": "true"}}
    assert "Console output" not in client.get(_detail(instance), **poll).content.decode()  # not in the cloud

    Instance.objects.filter(pk=instance.pk).update(status="provisioning", backend_id="sim-fra1-a-1")
    partial = client.get(_detail(instance), **poll)
    assert partial.status_code == 200  # still changing: the page keeps polling
    text = partial.content.decode()
    assert '<section class="card console-card" id="console-card-provisioning" hx-preserve="true">' in text
    assert f'hx-get="{_url(instance)}" hx-trigger="load, every 3s"' in text

    # A new status is a new card (loaded afresh: the boot, then the login prompt).
    Instance.objects.filter(pk=instance.pk).update(status="running")
    last = client.get(_detail(instance), **poll)
    assert last.status_code == 286 and 'id="console-card-running"' in last.content.decode()


def test_the_console_is_followed_while_the_server_boots_and_then_left_alone(launch, client_as, owner):
    from datetime import timedelta

    from django.utils import timezone

    instance = _running(launch)
    client = client_as(owner)
    poll = {"headers": {"HX-Request": "true"}}
    Instance.objects.filter(pk=instance.pk).update(running_since=timezone.now())
    assert client.get(_url(instance), **poll).status_code == 200  # just up: still printing
    Instance.objects.filter(pk=instance.pk).update(running_since=timezone.now() - timedelta(minutes=2))
    settled = client.get(_url(instance), **poll)
    assert settled.status_code == 286 and "web-1 login:" in settled.content.decode()  # the last answer
    Instance.objects.filter(pk=instance.pk).update(status="stopping")
    assert client.get(_url(instance), **poll).status_code == 200
