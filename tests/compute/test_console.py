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
