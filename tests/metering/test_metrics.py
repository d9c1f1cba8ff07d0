"""CPU samples: the backend interface's default, the simulated cloud's plausible and repeatable
figures (only while a server runs), and the JSON endpoint the server page's graph fetches."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.compute.backends.base import ComputeBackend, NotFound
from portal.compute.backends.simulated import SimulatedBackend
from portal.compute.models import SimulatedServer
from tests.factories import InstanceFactory


def _server(backend_id="sim-cpu000001", state="running", age=timedelta(days=3)):
    SimulatedServer.objects.create(
        backend_id=backend_id,
        idempotency_key=backend_id,
        zone_code="fra1-a",
        name="web-1",
        vcpus=1,
        ram_gib=2,
        flavor_code="s-1vcpu-2gb",
        state=state,
    )
    SimulatedServer.objects.filter(backend_id=backend_id).update(created_at=timezone.now() - age)
    return backend_id


def test_a_backend_reports_no_metrics_unless_it_says_otherwise():
    quiet = type(
        "Quiet",
        (ComputeBackend,),
        {name: lambda *a, **k: None for name in ComputeBackend.__abstractmethods__},
    )("quiet")
    now = timezone.now()
    assert quiet.cpu_samples("x", now - timedelta(hours=1), now) == []


def test_simulated_samples_are_plausible_and_repeatable(knobs):
    backend = SimulatedBackend("simulated")
    _server()
    end = timezone.now()
    start = end - timedelta(hours=24)
    samples = backend.cpu_samples("sim-cpu000001", start, end)
    assert 280 <= len(samples) <= 289  # every 5 minutes
    assert all(start <= at <= end for at, _ in samples)
    assert all(0 < value <= 100 for _, value in samples)
    assert {b - a for (a, _), (b, _) in itertools.pairwise(samples)} == {timedelta(minutes=5)}
    assert len({value for _, value in samples}) > 20  # noise, not a flat line
    assert backend.cpu_samples("sim-cpu000001", start, end) == samples  # seeded: same server, same figures
    _server("sim-cpu000002")
    assert [v for _, v in backend.cpu_samples("sim-cpu000002", start, end)] != [v for _, v in samples]


def test_simulated_sample_spacing_follows_the_window(knobs):
    backend = SimulatedBackend("simulated")
    _server(age=timedelta(days=30))
    end = timezone.now()
    hour = backend.cpu_samples("sim-cpu000001", end - timedelta(hours=1), end)
    week = backend.cpu_samples("sim-cpu000001", end - timedelta(days=7), end)
    assert hour[1][0] - hour[0][0] == timedelta(minutes=1)
    assert week[1][0] - week[0][0] == timedelta(minutes=30)
    assert 330 <= len(week) <= 337


def test_simulated_samples_only_while_running(knobs):
    backend = SimulatedBackend("simulated")
    end = timezone.now()
    start = end - timedelta(hours=24)
    for state in ("stopped", "building", "starting", "error"):
        assert backend.cpu_samples(_server(f"sim-{state}", state=state), start, end) == [], state
    # Created two hours ago: nothing from before it existed, nothing from the future.
    young = backend.cpu_samples(_server("sim-young", age=timedelta(hours=2)), start, end + timedelta(hours=5))
    assert 22 <= len(young) <= 25
    assert young[0][0] >= end - timedelta(hours=2)
    assert young[-1][0] <= timezone.now()
    with pytest.raises(NotFound):
        backend.cpu_samples("sim-gone", start, end)


# --- the endpoint ------------------------------------------------------------------------------


def _metrics_url(instance, query=""):
    project = instance.project
    return (
        reverse("metering:instance_metrics", args=[project.organization.slug, project.slug, instance.pk])
        + query
    )


def test_endpoint_returns_the_samples_to_a_viewer(project, viewer, client_as, knobs):
    instance = InstanceFactory(project=project, backend_id=_server())
    body = client_as(viewer).get(_metrics_url(instance)).json()
    assert body["instance"] == str(instance.pk)
    assert body["range"] == "24h" and body["label"] == "24 hours"
    assert 280 <= len(body["samples"]) <= 289
    ts, value = body["samples"][0]
    assert isinstance(ts, int) and isinstance(value, float)
    week = client_as(viewer).get(_metrics_url(instance, "?range=7d")).json()
    assert week["label"] == "7 days" and len(week["samples"]) >= 140


def test_endpoint_for_servers_without_samples(project, owner, client_as, knobs):
    client = client_as(owner)
    pending = InstanceFactory(project=project, status="pending", backend_id="")
    body = client.get(_metrics_url(pending)).json()
    assert body["samples"] == [] and "not reached the cloud" in body["message"]
    stopped = InstanceFactory(project=project, status="stopped", backend_id=_server(state="stopped"))
    body = client.get(_metrics_url(stopped)).json()
    assert body["samples"] == [] and "not running" in body["message"]
    gone = InstanceFactory(project=project, backend_id="sim-nowhere")
    assert "no longer knows" in client.get(_metrics_url(gone)).json()["message"]


def test_endpoint_says_when_the_cloud_fails(project, owner, client_as, knobs):
    instance = InstanceFactory(project=project, backend_id=_server())
    knobs.transient_error_rate = 1
    knobs.save()
    response = client_as(owner).get(_metrics_url(instance))
    assert response.status_code == 503
    assert response.json()["error"] == "The cloud is busy; we will retry."


def test_endpoint_refuses_unknown_ranges_and_strangers(project, owner, outsider, client_as, knobs):
    instance = InstanceFactory(project=project, backend_id=_server())
    assert client_as(owner).get(_metrics_url(instance, "?range=1y")).status_code == 400
    assert client_as(owner).post(_metrics_url(instance)).status_code == 405
    assert client_as(outsider).get(_metrics_url(instance)).status_code == 404


def test_the_detail_page_does_not_ask_the_cloud_for_metrics(project, owner, client_as, knobs, monkeypatch):
    instance = InstanceFactory(project=project, backend_id=_server())

    def refuse(*args, **kwargs):
        raise AssertionError("the detail page must not call the backend for metrics")

    monkeypatch.setattr(SimulatedBackend, "cpu_samples", refuse)
    page = client_as(owner).get(instance.get_absolute_url())
    assert page.status_code == 200
    assert "data-metrics-src" in page.content.decode()
