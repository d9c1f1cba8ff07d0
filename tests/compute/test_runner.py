"""The Celery step, called directly: idempotent, adopts servers created before a crash, retries only
transient errors, and a permanent failure frees the quota and sends exactly one e-mail."""

from __future__ import annotations

from django.test import override_settings

from portal.compute import runner
from portal.compute.backends import get_backend
from portal.compute.models import Instance, Operation, SimulatedServer
from portal.compute.operations import server_specs
from portal.compute.quota import project_usage
from tests.steps import drive, step


def _op(batch):
    return Operation.objects.get(instance__batch=batch, action="create")


def _drive(op, limit=20):
    """Run the task's steps as the worker would, without waiting between them."""
    drive(op, limit=limit)


def _step(op) -> runner.Step:
    """One step of one operation, as a message carrying its current token."""
    return step(op)[str(op.pk)]


def test_provisioning_reaches_running_with_an_address(launch, django_capture_on_commit_callbacks, mailoutbox):
    batch = launch()
    with django_capture_on_commit_callbacks(execute=True):
        _drive(_op(batch))
    instance = Instance.objects.get(batch=batch)
    assert instance.status == "running" and instance.addresses and instance.running_since
    assert len(mailoutbox) == 1 and "is ready" in mailoutbox[0].subject
    assert instance.ssh_command in mailoutbox[0].body


def test_a_server_without_a_public_address_is_announced_as_such(
    launch, django_capture_on_commit_callbacks, mailoutbox, monkeypatch
):
    from portal.compute.backends.simulated import SimulatedBackend

    monkeypatch.setattr(
        SimulatedBackend, "_free_addresses", lambda self, zone, count: [None] * count
    )  # e.g. user networking
    batch = launch()
    with django_capture_on_commit_callbacks(execute=True):
        _drive(_op(batch))
    text, html = mailoutbox[0].body, mailoutbox[0].alternatives[0][0]
    assert "address: none (this zone's network gives the server no public address)" in text
    assert "connect:" not in text
    assert "No public address" in html


def test_running_the_step_twice_creates_one_server(launch):
    op = _op(launch())
    _step(op)
    Operation.objects.filter(pk=op.pk).update(submitted_at=None)  # as if the second delivery raced the first
    _step(op)
    assert SimulatedServer.objects.count() == 1
    _drive(op)
    assert SimulatedServer.objects.count() == 1


def test_a_server_created_before_a_crash_is_adopted_not_duplicated(launch):
    batch = launch()
    instance = Instance.objects.get(batch=batch)
    # The worker called the cloud, then died before saving anything.
    created = get_backend("simulated").create_server(server_specs([instance])[0])
    _drive(_op(batch))
    instance.refresh_from_db()
    assert instance.backend_id == created.backend_id and instance.status == "running"
    assert SimulatedServer.objects.count() == 1


@override_settings(COMPUTE_MAX_TRANSIENT_RETRIES=6)
def test_transient_errors_are_retried_with_backoff_then_succeed(launch, knobs):
    op = _op(launch())
    knobs.transient_error_rate = 1.0
    knobs.save()
    delays = [_step(op).again_in for _ in range(3)]
    assert all(d is not None and 1 <= d <= 60 for d in delays)
    assert Operation.objects.get(pk=op.pk).attempts == 3
    knobs.transient_error_rate = 0
    knobs.save()
    _drive(op)
    assert Operation.objects.get(pk=op.pk).state == "succeeded"


@override_settings(COMPUTE_MAX_TRANSIENT_RETRIES=4)
def test_giving_up_after_max_retries_plus_one_calls(launch, knobs, project):
    op = _op(launch())
    knobs.transient_error_rate = 1.0
    knobs.save()
    _drive(op)
    op.refresh_from_db()
    assert op.state == "failed" and op.attempts == 5  # max_retries + 1 backend calls, all transient
    assert "did not answer" in op.error_message
    assert project_usage(project).instances == 0


def test_a_permanent_failure_frees_quota_and_sends_one_email(
    launch, project, django_capture_on_commit_callbacks, mailoutbox
):
    batch = launch(name="will-fail-boot")
    op = _op(batch)
    with django_capture_on_commit_callbacks(execute=True):
        _drive(op)
        _step(op)  # a late duplicate delivery
    instance = Instance.objects.get(batch=batch)
    assert instance.status == "error" and "failed to boot" in instance.fault_message
    assert "Try launching it again" in instance.fault_message
    assert project_usage(project).instances == 0
    assert len(mailoutbox) == 1 and "could not be launched" in mailoutbox[0].subject
    assert SimulatedServer.objects.filter(deleted=False).count() == 0  # cleaned up, capacity back


def test_one_email_for_a_bulk_launch(launch, django_capture_on_commit_callbacks, mailoutbox):
    batch = launch(count=3)
    with django_capture_on_commit_callbacks(execute=True):
        for op in Operation.objects.filter(instance__batch=batch):
            _drive(op)
    assert len(mailoutbox) == 1
    assert "3 servers are ready" in mailoutbox[0].subject
    assert all(name in mailoutbox[0].body for name in ("web-1", "web-2", "web-3"))


def test_sold_out_is_a_permanent_failure_with_advice(launch, catalog, project):
    from portal.compute.models import SimulatedZone

    SimulatedZone.objects.create(zone_code="fra1-a", total_vcpus=1, total_ram_gib=1)
    op = _op(launch())
    _drive(op)
    op.refresh_from_db()
    assert op.state == "failed" and "sold out for this size" in op.error_message


def test_stop_then_start_and_resize(launch, access, django_capture_on_commit_callbacks):
    from portal.catalog.models import Flavor
    from portal.compute import services

    batch = launch()
    _drive(_op(batch))
    instance = Instance.objects.get(batch=batch)
    stop = services.instance_action(access=access, instance=instance, action="stop")
    again = services.instance_action(access=access, instance=instance, action="stop")
    assert again.pk == stop.pk  # asking again while it stops changes nothing
    _drive(stop)
    instance.refresh_from_db()
    assert instance.status == "stopped" and instance.running_since is None
    bigger = Flavor.objects.get(code="s-2vcpu-4gb")
    _drive(services.instance_action(access=access, instance=instance, action="resize", flavor=bigger))
    instance.refresh_from_db()
    assert instance.status == "stopped" and instance.flavor == bigger
    _drive(services.instance_action(access=access, instance=instance, action="start"))
    instance.refresh_from_db()
    assert instance.status == "running"


def test_terminating_keeps_and_detaches_its_volumes(launch, access):
    from portal.compute import services
    from portal.compute.models import Volume

    batch = launch()
    _drive(_op(batch))
    instance = Instance.objects.get(batch=batch)
    volume = Volume.objects.create(
        project=instance.project,
        name="data",
        zone=instance.zone,
        size_gib=10,
        status="in_use",
        attached_to=instance,
    )
    _drive(
        services.instance_action(
            access=access, instance=instance, action="terminate", confirm_name=instance.name
        )
    )
    volume.refresh_from_db()
    assert Instance.objects.get(pk=instance.pk).status == "terminated"
    assert volume.status == "available" and volume.attached_to is None


def test_a_stale_or_duplicate_message_does_nothing(launch):
    op = _op(launch())
    token = op.step_token
    first = runner.advance([(str(op.pk), token)])[str(op.pk)]
    assert first.token and first.token != token
    assert runner.advance([(str(op.pk), token)])[str(op.pk)].done  # the same message delivered again: stale
    assert Operation.objects.get(pk=op.pk).step_token == first.token
    assert SimulatedServer.objects.count() == 1


def test_terminate_while_provisioning_leaves_no_server_and_keeps_the_email_promise(
    launch, access, django_capture_on_commit_callbacks, mailoutbox
):
    from portal.compute import services

    batch = launch(count=2)
    first, second = Operation.objects.filter(instance__batch=batch).order_by("instance__name")
    _step(first)  # web-1's server is being created in the cloud
    web1 = Instance.objects.get(pk=first.instance_id)
    with django_capture_on_commit_callbacks(execute=True):
        terminate = services.instance_action(
            access=access, instance=web1, action="terminate", confirm_name="web-1"
        )
        _drive(first)
        _drive(terminate)
        _drive(second)
    assert Instance.objects.get(pk=web1.pk).status == "terminated"
    assert SimulatedServer.objects.filter(deleted=False).count() == 1  # only web-2's
    subjects = sorted(m.subject for m in mailoutbox)
    assert len(subjects) == 2 and subjects[0].startswith("web-1 was terminated")
    assert subjects[1].startswith("web-2 is ready")  # the launch's e-mail speaks only of web-2


def test_a_failed_stop_with_the_server_still_there_keeps_holding_quota(launch, access, knobs, project):
    from django.test import override_settings

    from portal.compute import services

    batch = launch()
    _drive(_op(batch))
    instance = Instance.objects.get(batch=batch)
    stop = services.instance_action(access=access, instance=instance, action="stop")
    knobs.transient_error_rate = 1.0
    knobs.save()
    with override_settings(COMPUTE_MAX_TRANSIENT_RETRIES=1):
        _drive(stop)
    instance.refresh_from_db()
    assert instance.status == "error" and instance.backend_id
    assert project_usage(project).instances == 1  # the server still exists in the cloud


# --- The servers of one launch, stepped together ---------------------------------------------


def _drive_launch(batch, limit=20) -> list[dict]:
    """Step a launch's operations together, as one `operations_advance` message chain does; the
    steps each round returned."""
    steps = [(str(op.pk), op.step_token) for op in Operation.objects.filter(instance__batch=batch)]
    rounds = []
    for _ in range(limit):
        result = runner.advance(steps)
        rounds.append(result)
        steps = [(op_id, step.token) for op_id, step in result.items() if not step.done]
        if not steps:
            return rounds
    raise AssertionError("the launch did not finish")


def test_a_launch_of_many_servers_takes_the_same_statements_as_a_launch_of_two(launch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _drive_launch(launch(name="first"))  # the zone is sized on its first launch
    counts = {}
    for count in (2, 7):
        batch = launch(name=f"n{count}", count=count)
        with CaptureQueriesContext(connection) as queries:
            _drive_launch(batch)
        counts[count] = len(queries)
        assert Instance.objects.filter(batch=batch, status="running").count() == count
    assert counts[2] == counts[7], counts


def test_one_server_failing_to_boot_does_not_hold_back_the_rest_of_its_launch(
    launch, knobs, project, django_capture_on_commit_callbacks, mailoutbox
):
    knobs.fail_marker = "web-2"
    knobs.save()
    batch = launch(count=3)
    with django_capture_on_commit_callbacks(execute=True):
        _drive_launch(batch)
    status = dict(Instance.objects.filter(batch=batch).values_list("name", "status"))
    assert status == {"web-1": "running", "web-2": "error", "web-3": "running"}
    assert project_usage(project).instances == 2  # the failed one's server was deleted
    assert len(mailoutbox) == 1
    body = mailoutbox[0].body
    assert "web-1" in body and "web-3" in body and "could not be launched" in body


def test_a_transient_fault_for_one_server_retries_that_server_alone(launch, knobs, monkeypatch, settings):
    from portal.compute.backends import Transient
    from portal.compute.backends.simulated import SimulatedBackend

    # The cloud's answer to the launch's call fails for web-2 only, once; then all goes well.
    create_servers, failed = SimulatedBackend.create_servers, []

    def once_busy_for_web_2(self, specs):
        results = create_servers(self, specs)
        for n, spec in enumerate(specs):
            if spec.name == "web-2" and not failed:
                failed.append(spec.name)
                results[n] = Transient("The cloud is busy; we will retry.", "simulated transient fault")
        return results

    monkeypatch.setattr(SimulatedBackend, "create_servers", once_busy_for_web_2)
    batch = launch(count=3)
    ops = {op.instance.name: str(op.pk) for op in Operation.objects.filter(instance__batch=batch)}
    first = _drive_launch(batch)[0]
    assert 1 <= first[ops["web-2"]].again_in <= 60  # backing off
    poll = settings.COMPUTE_POLL_SECONDS  # created: looked at again at the usual pace
    assert first[ops["web-1"]].again_in == first[ops["web-3"]].again_in == poll
    assert Operation.objects.get(pk=ops["web-2"]).attempts == 1
    assert Instance.objects.filter(batch=batch, status="running").count() == 3
    assert SimulatedServer.objects.count() == 3


def test_a_launch_is_queued_as_its_clouds_takes_it(launch, django_capture_on_commit_callbacks, monkeypatch):
    from portal.compute.backends.simulated import SimulatedBackend
    from portal.compute.tasks import operations_advance

    sent = []
    monkeypatch.setattr(operations_advance, "delay", sent.append)
    batch = launch(count=3)
    for callback in launch.callbacks:
        callback()
    assert len(sent) == 1 and len(sent[0]) == 3  # the simulated cloud creates them in one call
    assert {op_id for op_id, _ in sent[0]} == {
        str(pk) for pk in Operation.objects.filter(instance__batch=batch).values_list("pk", flat=True)
    }

    # A cloud without bulk calls gets one message per server, worked on in parallel.
    monkeypatch.setattr(SimulatedBackend, "batch_size", 1)
    sent.clear()
    launch(name="db", count=3)
    for callback in launch.callbacks:
        callback()
    assert [len(message) for message in sent] == [1, 1, 1]


def test_an_unexpected_error_in_one_step_leaves_the_rest_of_the_message_going(
    launch, access, knobs, monkeypatch, caplog
):
    from portal.compute import services
    from portal.compute.backends.simulated import SimulatedBackend

    old = launch(name="old")
    _drive(_op(old))
    running = Instance.objects.get(batch=old)
    stop = services.instance_action(access=access, instance=running, action="stop")

    def broken(self, backend_id):
        raise RuntimeError("a bug in a cloud driver")

    monkeypatch.setattr(SimulatedBackend, "stop_server", broken)
    batch = launch(count=2)
    creates = list(Operation.objects.filter(instance__batch=batch))
    steps = runner.advance([(str(op.pk), op.step_token) for op in [stop, *creates]])
    assert steps[str(stop.pk)].done  # this message is done with it ...
    stop.refresh_from_db()
    assert stop.state == "running" and stop.next_check_at  # ... the reconciler takes it over later
    assert "operation step failed" in caplog.text
    assert all(not steps[str(op.pk)].done for op in creates)  # the launch went on
    assert Instance.objects.filter(batch=batch, status="provisioning").exclude(backend_id="").count() == 2


def test_a_failed_call_for_the_whole_launch_retries_each_server(launch, monkeypatch):
    from portal.compute.backends import Transient
    from portal.compute.backends.simulated import SimulatedBackend

    def busy(self, specs):
        raise Transient("The cloud is busy; we will retry.", "503 from the bulk endpoint")

    monkeypatch.setattr(SimulatedBackend, "create_servers", busy)
    batch = launch(count=3)
    ops = list(Operation.objects.filter(instance__batch=batch))
    first = runner.advance([(str(op.pk), op.step_token) for op in ops])
    assert all(1 <= step.again_in <= 60 for step in first.values())  # each backs off on its own
    assert [op.attempts for op in Operation.objects.filter(instance__batch=batch)] == [1, 1, 1]


def test_messages_group_operations_as_their_cloud_takes_them(monkeypatch):
    from portal.compute.backends.simulated import SimulatedBackend

    monkeypatch.setattr(SimulatedBackend, "batch_size", 2)
    messages = runner.step_messages(
        [
            ("a", "t", "simulated"),
            ("b", "t", "simulated"),
            ("c", "t", "simulated"),
            ("d", "t", "gone-cloud"),
            ("e", "t", "gone-cloud"),
        ]
    )
    assert sorted(messages) == sorted([[["a", "t"], ["b", "t"]], [["c", "t"]], [["d", "t"]], [["e", "t"]]])
