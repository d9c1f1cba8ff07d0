from __future__ import annotations

import pytest

from portal.catalog.models import Flavor, Image
from portal.compute import services
from portal.compute.models import SimulatedKnobs
from portal.tenancy.access import project_access


@pytest.fixture
def access(project, owner, catalog):
    return project_access(owner, project.organization.slug, project.slug)


@pytest.fixture
def knobs(db):
    """Fast, fault-free simulated cloud; tests turn individual knobs."""
    return SimulatedKnobs.objects.create(
        boot_seconds=0, action_seconds=0, transient_error_rate=0, fail_marker="fail"
    )


@pytest.fixture
def launch(access, catalog, knobs, django_capture_on_commit_callbacks):
    """Launch through the service (callbacks captured, not run: the tests drive the runner)."""

    def go(name="web", count=1, zone="fra1-a", flavor="s-1vcpu-2gb", image="Debian 13", **extra):
        req = services.LaunchRequest(
            name=name,
            count=count,
            zone=catalog[zone],
            flavor=Flavor.objects.get(code=flavor),
            image=Image.objects.get(name=image),
            root_disk_gib=extra.pop("root_disk_gib", 50),
            **extra,
        )
        with django_capture_on_commit_callbacks() as callbacks:
            batch = services.instance_launch(access=access, req=req)
        go.callbacks = callbacks
        return batch

    return go
