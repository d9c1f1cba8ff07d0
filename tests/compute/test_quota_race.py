"""Concurrent launches for the last free slot: exactly one wins (row lock on the project).

Runs on both passes; PostgreSQL's row locks are the case that matters in production, SQLite
serialises writers with IMMEDIATE transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory


@pytest.mark.django_db(transaction=True)
def test_concurrent_launches_for_the_last_slot():
    load_demo_catalog()
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(organization=org, quota_instances=3)
    req = services.LaunchRequest(
        name="race",
        count=1,
        zone=Zone.objects.get(code="fra1-a"),
        flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
        image=Image.objects.get(name="Debian 13"),
        root_disk_gib=25,
    )
    Instance.objects.bulk_create(
        Instance(
            project=project,
            name=f"old-{i}",
            zone=req.zone,
            flavor=req.flavor,
            image=req.image,
            root_disk_gib=25,
            status="running",
        )
        for i in range(2)
    )
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def attempt():
        try:
            access = project_access(owner, org.slug, project.slug)
            barrier.wait()
            services.instance_launch(access=access, req=req)
            outcomes.append("launched")
        except services.QuotaExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    print(f"{connection.vendor}: {sorted(outcomes)}")
    assert sorted(outcomes) == ["launched"] + ["refused"] * 5
    assert Instance.objects.filter(project=project).count() == 3
