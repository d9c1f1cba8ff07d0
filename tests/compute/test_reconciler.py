from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.compute import reconciler
from portal.compute.backends.base import IDEMPOTENCY_METADATA_KEY
from portal.compute.models import BackendOrphan, Instance, Operation, SimulatedServer
from tests.steps import drive


def _running(launch):
    batch = launch()
    op = Operation.objects.get(instance__batch=batch)
    drive(op)
    return Instance.objects.get(batch=batch)


def test_work_accepted_while_the_broker_was_down_is_enqueued_again(launch):
    op = Operation.objects.get(instance__batch=launch())
    Operation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    report = reconciler.reconcile()
    assert [op_id for op_id, _, _ in report.lost] == [op.pk]
    assert reconciler.reconcile().lost == []  # claimed: a second run doesn't enqueue it twice


def test_an_operation_stuck_past_its_deadline_is_failed_with_a_reason(launch):
    op = Operation.objects.get(instance__batch=launch())
    Operation.objects.filter(pk=op.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    report = reconciler.reconcile()
    op.refresh_from_db()
    assert report.timed_out == [str(op.pk)]
    assert op.state == "failed" and "took far too long" in op.error_message
    assert Instance.objects.get(pk=op.instance_id).status == "error"


def test_a_server_stopped_outside_the_portal_is_noticed_and_audited(launch):
    instance = _running(launch)
    SimulatedServer.objects.filter(backend_id=instance.backend_id).update(state="stopped")
    report = reconciler.reconcile()
    instance.refresh_from_db()
    assert report.drifted == [str(instance.pk)] and instance.status == "stopped"
    event = AuditEvent.objects.get(action="instance.changed_outside")
    assert event.changes == {"status": ["running", "stopped"]}
    assert reconciler.reconcile().drifted == []


def test_a_server_deleted_outside_the_portal_becomes_an_error(launch):
    instance = _running(launch)
    SimulatedServer.objects.filter(backend_id=instance.backend_id).update(deleted=True)
    reconciler.reconcile()
    instance.refresh_from_db()
    assert instance.status == "error" and "disappeared" in instance.fault_message


def test_a_server_with_our_metadata_but_no_row_is_flagged_once(launch, catalog):
    SimulatedServer.objects.create(
        backend_id="sim-orphan",
        idempotency_key="0b5e6f1e-0000-4000-8000-000000000000",
        zone_code="fra1-a",
        name="lost",
        vcpus=1,
        ram_gib=1,
        flavor_code="s-1vcpu-1gb",
        state="running",
        metadata={IDEMPOTENCY_METADATA_KEY: "0b5e6f1e-0000-4000-8000-000000000000"},
    )
    assert reconciler.reconcile().orphans == ["sim-orphan"]
    assert reconciler.reconcile().orphans == []
    assert BackendOrphan.objects.get().name == "lost"


def test_zone_capacity_is_refreshed_from_the_backend(launch, catalog):
    _running(launch)
    reconciler.reconcile()
    zone = type(catalog["fra1-a"]).objects.get(code="fra1-a")
    assert zone.capacity_updated_at is not None
    assert zone.free_vcpus == catalog["fra1-a"].free_vcpus - 1
