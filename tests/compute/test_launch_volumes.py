"""Volumes chosen with a launch, on the simulated cloud through the one pipeline: new ones are
created with each server and existing ones reserved, both attached once the server runs, whichever
is ready last; a volume that fails leaves the server as it is; bad input changes nothing."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditEvent
from portal.compute import reconciler, runner
from portal.compute.backends.base import Rejected
from portal.compute.backends.simulated import SimulatedBackend
from portal.compute.models import Instance, Operation, SimulatedVolume, Volume
from portal.compute.operations.launch_volumes import attach_ready
from portal.compute.quota import QuotaExceeded
from portal.compute.services import ComputeRefused, NewVolume
from portal.compute.services import volumes as volume_services
from tests.factories import InstanceFactory, ProjectFactory
from tests.steps import drive


def _all_open():
    return list(Operation.objects.active().values_list("pk", flat=True))


def _drive_all():
    """Every open operation to its end, as the workers would (attaches made on the way included)."""
    drive(*_all_open())


@pytest.fixture
def spare(access, catalog, knobs, django_capture_on_commit_callbacks) -> Volume:
    """An available volume of the project in fra1-a."""
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_create(access=access, name="spare", zone=catalog["fra1-a"], size_gib=5)
    drive(op)
    return Volume.objects.get(pk=op.volume_id)


def test_new_volumes_are_made_for_each_server_and_attached_once_it_runs(launch):
    batch = launch(name="web", count=2, new_volumes=(NewVolume("data", 10), NewVolume("logs", 2)))
    volumes = Volume.objects.order_by("name")
    assert [(v.name, v.size_gib, v.status, v.pending_server.name) for v in volumes] == [
        ("web-1-data", 10, "creating", "web-1"),
        ("web-1-logs", 2, "creating", "web-1"),
        ("web-2-data", 10, "creating", "web-2"),
        ("web-2-logs", 2, "creating", "web-2"),
    ]
    # Queued with the servers, after commit, in the same enqueue.
    assert Operation.objects.filter(action="volume_create", state="pending").count() == 4
    assert len(launch.callbacks) == 1
    assert AuditEvent.objects.filter(action="volume.created").count() == 4
    assert "new data (10 GiB) each" in str(AuditEvent.objects.get(action="instance.launched").changes)

    _drive_all()
    for server in batch.instances.all():
        attached = server.volumes.order_by("name")
        assert sorted((v.status, v.device) for v in attached) == [
            ("in_use", "/dev/vdb"),
            ("in_use", "/dev/vdc"),
        ]
        assert all(v.pending_server is None for v in attached)
        assert {s.attached_to for s in SimulatedVolume.objects.filter(name__startswith=server.name)} == {
            server.backend_id
        }
    attaches = Operation.objects.filter(action="volume_attach")
    assert attaches.count() == 4 and set(attaches.values_list("state", flat=True)) == {"succeeded"}
    assert AuditEvent.objects.filter(action="volume.attached").count() == 4


def test_an_existing_volume_is_reserved_then_attached(launch, spare, access, project):
    batch = launch(name="db", existing_volumes=(spare,))
    server = batch.instances.get()
    spare.refresh_from_db()
    assert (spare.status, spare.pending_server, spare.attached_to) == ("available", server, None)
    # Reserved: nobody else may attach it meanwhile.
    other = InstanceFactory(project=project, name="other", zone=spare.zone, status="running")
    with pytest.raises(ComputeRefused, match="to be attached to db once it runs"):
        volume_services.volume_attach(access=access, volume=spare, instance=other)

    _drive_all()
    spare.refresh_from_db()
    assert (spare.status, spare.attached_to, spare.pending_server) == ("in_use", server, None)


def test_a_volume_ready_after_its_server_is_attached_then(launch, knobs):
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    server_op = Operation.objects.get(instance__batch=batch)
    volume_op = Operation.objects.get(action="volume_create")
    drive(server_op)  # the server runs first; its volume is still being made
    volume = Volume.objects.get()
    assert volume.status == "creating" and not Operation.objects.filter(action="volume_attach").exists()
    drive(volume_op)
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to) == ("in_use", batch.instances.get())


def test_a_server_ready_after_its_volume_takes_it_then(launch):
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    drive(Operation.objects.get(action="volume_create"))
    volume = Volume.objects.get()
    assert (volume.status, volume.attached_to) == ("available", None)
    drive(Operation.objects.get(instance__batch=batch))
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to) == ("in_use", batch.instances.get())


def test_two_callers_make_one_attach(launch, monkeypatch):
    monkeypatch.setattr(runner, "attach_ready", lambda **kw: [])
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    _drive_all()
    # The runner and the reconciler's sweep both find the volume ready: one attach operation.
    first = attach_ready(instance_ids=[batch.instances.get().pk])
    again = attach_ready(sweep=True) + attach_ready(volume_ids=[Volume.objects.get().pk])
    assert len(first) == 1 and again == []
    assert Operation.objects.filter(action="volume_attach").count() == 1


def test_the_reconciler_attaches_what_a_dead_worker_missed(launch, monkeypatch):
    monkeypatch.setattr(runner, "attach_ready", lambda **kw: [])  # the worker died before it
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    _drive_all()
    volume = Volume.objects.get()
    assert (volume.status, volume.pending_server) == ("available", batch.instances.get())
    report = reconciler.reconcile()
    attach = Operation.objects.get(action="volume_attach")
    assert (attach.pk, attach.step_token, "simulated") in report.lost
    monkeypatch.undo()
    drive(attach)
    volume.refresh_from_db()
    assert volume.status == "in_use" and volume.attached_to == batch.instances.get()


def test_a_volume_that_fails_leaves_the_server_running_and_its_page_says_so(
    launch, monkeypatch, client_as, owner, project
):
    def refuse(self, spec):
        raise Rejected("The storage pool is full in fra1-a.")

    monkeypatch.setattr(SimulatedBackend, "create_volume", refuse)
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    _drive_all()
    server = batch.instances.get()
    volume = Volume.objects.get()
    assert server.status == "running"
    assert (volume.status, volume.attached_to, volume.pending_server) == ("error", None, server)
    page = client_as(owner).get(server.get_absolute_url()).content.decode()
    assert "app-data" in page and "The storage pool is full in fra1-a." in page
    assert "The server is not affected" in page


def test_a_refused_attach_shows_on_the_server_page(launch, monkeypatch, client_as, owner):
    def refuse(self, volume_id, server_id):
        raise Rejected("The server has no free disk slot.")

    monkeypatch.setattr(SimulatedBackend, "attach_volume", refuse)
    batch = launch(name="app", new_volumes=(NewVolume("data", 10),))
    _drive_all()
    server = batch.instances.get()
    volume = Volume.objects.get()
    assert server.status == "running" and (volume.status, volume.attached_to) == ("available", None)
    page = client_as(owner).get(server.get_absolute_url()).content.decode()
    assert "Attach volume" in page and "The server has no free disk slot." in page


def test_a_server_that_fails_to_launch_lets_go_of_its_volumes(launch, spare):
    batch = launch(name="fail-app", existing_volumes=(spare,))
    _drive_all()
    assert batch.instances.get().status == "error"
    spare.refresh_from_db()
    assert (spare.status, spare.pending_server, spare.attached_to) == ("available", None, None)


def test_a_reserved_volume_deleted_before_its_server_runs_is_not_attached(launch, spare, access):
    batch = launch(name="db", existing_volumes=(spare,))
    drive(volume_services.volume_delete(access=access, volume=spare))
    spare.refresh_from_db()
    assert (spare.status, spare.pending_server) == ("deleted", None)
    assert AuditEvent.objects.get(action="volume.deleted").changes["waiting for"] == ["db", None]
    _drive_all()
    server = batch.instances.get()
    assert server.status == "running" and not server.volumes.exists()
    assert not Operation.objects.filter(action="volume_attach").exists()


def _refused(launch, **kw) -> list[str]:
    instances, volumes = Instance.objects.count(), Volume.objects.count()
    with pytest.raises(ComputeRefused) as refused:
        launch(**kw)
    assert (Instance.objects.count(), Volume.objects.count()) == (instances, volumes)  # nothing made
    return [p.message for p in refused.value.problems]


def test_every_bad_volume_is_named_at_once_and_nothing_is_made(launch, spare, project, catalog):
    far = Volume.objects.create(
        project=project, name="far", zone=catalog["iad1-a"], size_gib=5, status="available"
    )
    busy_on = InstanceFactory(project=project, name="busy", zone=catalog["fra1-a"], status="running")
    busy = Volume.objects.create(
        project=project,
        name="busy-disk",
        zone=catalog["fra1-a"],
        size_gib=5,
        status="in_use",
        attached_to=busy_on,
    )
    foreign = Volume.objects.create(
        project=ProjectFactory(organization=project.organization),
        name="theirs",
        zone=catalog["fra1-a"],
        size_gib=5,
        status="available",
    )
    messages = _refused(
        launch,
        name="web",
        count=2,
        new_volumes=(NewVolume("data", 0), NewVolume("Bad Name", 10), NewVolume("big", 20000)),
        existing_volumes=(far, busy, foreign),
    )
    assert messages[-7:] == [
        "New volume 1: a volume is 1 to 16384 GiB.",
        "New volume 2: use lower-case letters, digits and hyphens (not at the start or end).",
        "New volume 3: a volume is 1 to 16384 GiB.",
        "Existing volumes can only be attached to a single server: launch one, or add new volumes "
        "(each server gets its own set).",
        "Volume far is in iad1-a, not fra1-a: a server can only use volumes of its own zone.",
        "Volume busy-disk is attached to busy: detach it first.",
        "Choose volumes of this project.",
    ]
    assert not any("theirs" in m for m in messages)  # another project's volume is not described


def test_a_zone_without_volumes_takes_none(launch, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {**zone.backend_settings, "absent": ["volumes"]}
    zone.save()
    messages = _refused(launch, name="web", new_volumes=(NewVolume("data", 10),))
    assert messages == [
        "Volumes are not available in fra1-a. Launch without volumes, or choose another zone."
    ]
    assert launch(name="web").instances.count() == 1  # without volumes it launches


def test_too_many_and_taken_names(launch, spare, settings):
    settings.COMPUTE_VOLUMES_PER_SERVER = 2
    Volume.objects.filter(pk=spare.pk).update(name="web-data")
    messages = _refused(
        launch, name="web", new_volumes=(NewVolume("data", 1), NewVolume("more", 1), NewVolume("x", 1))
    )
    assert messages == [
        "A server takes at most 2 volumes; choose fewer.",
        "The project already has a volume named web-data: choose another name.",
    ]


def test_over_the_volume_quota_is_refused_with_the_servers(launch, project):
    project.quota_volume_gib = 30
    project.save()
    with pytest.raises(QuotaExceeded, match=r"volume storage: needs 40 GiB, 30 GiB left of 30 GiB"):
        launch(name="web", count=2, new_volumes=(NewVolume("data", 20),))
    assert not Instance.objects.exists() and not Volume.objects.exists()
    launch(name="web", count=2, new_volumes=(NewVolume("data", 15),))
    assert Volume.objects.count() == 2


def test_attached_by_hand_to_the_server_it_waited_for_it_is_no_launch_volume_any_more(
    launch, spare, access, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(runner, "attach_ready", lambda **kw: [])  # before the launch attach is made
    batch = launch(name="db", existing_volumes=(spare,))
    _drive_all()
    server = batch.instances.get()
    with django_capture_on_commit_callbacks():
        drive(volume_services.volume_attach(access=access, volume=spare, instance=server))
    with django_capture_on_commit_callbacks():
        drive(volume_services.volume_detach(access=access, volume=spare))
    monkeypatch.undo()
    # Detached by hand, it stays detached: the sweep does not attach it again.
    assert attach_ready(sweep=True) == []
    spare.refresh_from_db()
    assert (spare.status, spare.attached_to, spare.pending_server) == ("available", None, None)
