"""Every POST endpoint honours Idempotency-Key: the retry answers like the first request, with the
same status and body, and acts no second time (no second object, no second audit event)."""

from __future__ import annotations

import pytest

from portal.api.models import IdempotencyRecord
from portal.audit.models import AuditEvent
from portal.catalog.models import Zone
from portal.compute.models import FirewallRuleSet, Volume
from tests.api.conftest import launch_body
from tests.api.world import KEY_A
from tests.factories import InstanceFactory


def _launch(project):
    return "instances", launch_body(project, count=2)


def _action(project):
    return f"instances/{InstanceFactory(project=project).pk}/actions", {"action": "stop"}


def _key(project):
    return "ssh-keys", {"project": project.slug, "public_key": KEY_A}


def _firewall(project):
    return "firewalls", {"project": project.pk, "preset": "web"}


def _rule(project):
    rule_set = FirewallRuleSet.objects.create(project=project, name="db")
    return f"firewalls/{rule_set.pk}/rules", {"protocol": "tcp", "port_from": 5432, "source": "10.0.0.0/8"}


def _volume(project):
    return "volumes", {"project": project.pk, "name": "data", "zone": "fra1-a", "size_gib": 10}


def _attach(project):
    volume = Volume.objects.create(
        project=project, name="data", zone=Zone.objects.get(code="fra1-a"), size_gib=5, status="available"
    )
    server = InstanceFactory(project=project)
    return f"volumes/{volume.pk}/actions", {"action": "attach", "instance": str(server.pk)}


def _network(project):
    return "networks", {"project": project.pk, "name": "lan", "zone": "fra1-a", "cidr": "10.20.0.0/24"}


def _join(project):
    from portal.compute.models import Network

    network = Network.objects.create(
        project=project,
        name="lan",
        zone=Zone.objects.get(code="fra1-a"),
        cidr="10.20.0.0/24",
        status="available",
    )
    server = InstanceFactory(project=project, status="running")
    return f"networks/{network.pk}/actions", {"action": "attach", "instance": str(server.pk)}


def _snapshot(project):
    return "snapshots", {"project": project.pk, "server": str(InstanceFactory(project=project).pk)}


def _copy(project):
    from portal.compute.models import Snapshot

    server = InstanceFactory(project=project, backend_id="sim-x")
    image = Snapshot.objects.create(
        project=project, zone=server.zone, name="golden", kind="server", source_instance=server,
        status="available", backend_id="simsnap-golden", image_ref="simimg-golden", size_gib=10,
    )  # fmt: skip
    return f"snapshots/{image.pk}/copies", {"zone": "ams1-a"}


def _restore(project):
    from portal.compute.models import Snapshot

    server = InstanceFactory(project=project, name="db-1", status="running", backend_id="sim-restore")
    snapshot = Snapshot.objects.create(
        project=project,
        zone=server.zone,
        name="nightly",
        kind="backup",
        source_instance=server,
        status="available",
        image_ref="simimg-restore",
    )
    return f"instances/{server.pk}/restore", {"snapshot": str(snapshot.pk), "confirm_name": "db-1"}


POSTS = {
    "launch_instances": _launch,
    "instance_action": _action,
    "add_key": _key,
    "create_firewall": _firewall,
    "add_rule": _rule,
    "create_volume": _volume,
    "volume_action": _attach,
    "create_network": _network,
    "network_action": _join,
    "create_snapshot": _snapshot,
    "copy_snapshot": _copy,
    "restore_instance_disk": _restore,
}


# POSTs that are not replayed, and why.
NOT_REPLAYED = {
    # A console ticket is good for one connection within a minute: a retry asks for a new one
    # (replaying the first answer would hand out a ticket that may be used already).
    "open_console",
}
# POSTs replayed without what the first answer held once: a retry of a root password reset resets
# nothing again and answers `password: null` (tests/api/test_password_api.py).
REPLAYED_WITHOUT_SECRET = {"reset_password"}


def test_the_table_lists_every_post_of_the_schema(owner_api):
    schema = owner_api.get("openapi.json").json()
    posts = {ops["post"]["operationId"] for ops in schema["paths"].values() if "post" in ops}
    assert posts == set(POSTS) | NOT_REPLAYED | REPLAYED_WITHOUT_SECRET


@pytest.mark.parametrize("endpoint", POSTS)
def test_a_retry_answers_like_the_first_and_acts_once(endpoint, owner_api, project):
    path, body = POSTS[endpoint](project)
    headers = {"Idempotency-Key": f"retry-{endpoint}"}
    first = owner_api.post(path, body, headers=headers)
    assert first.status_code in (200, 201, 202), first.content
    events = AuditEvent.objects.count()
    again = owner_api.post(path, body, headers=headers)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert AuditEvent.objects.count() == events
    record = IdempotencyRecord.objects.get()
    assert record.target_type is not None and record.target_id
