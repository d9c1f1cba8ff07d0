"""Fault injection: what breaks must lose no request, make no duplicate server, leak no quota and
bill nothing twice. Bounded in time; all traffic stays on this machine.

R1 (test_crash_windows.py) kills a real worker in every crash window of an operation; R2 runs 200
launches through a cloud that fails 30 % of its calls; R3 (test_r3_redis_restart.py) loses the
broker's queue; R4 races 50 launches for 10 free slots. (The permanent-fault case
of R2 is tests/compute/test_runner.py::test_a_permanent_failure_frees_quota_and_sends_one_email
and ::test_giving_up_after_max_retries_plus_one_calls.)
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.db import connection

from portal.compute import runner, services
from portal.compute.models import Instance, Operation, SimulatedKnobs
from portal.tenancy.access import project_access
from tests.faults.world import assert_consistent, world

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]


# --- R2 -----------------------------------------------------------------------------------------


def _messages_of(project) -> list[list[list[str]]]:
    """The launches' first messages, as each launch's `tasks.operations_enqueue` sends them."""
    ops = Operation.objects.filter(instance__project=project).order_by("instance__batch__created_at")
    by_launch = defaultdict(list)
    for pk, token, backend, batch in ops.values_list(
        "pk", "step_token", "instance__zone__backend", "instance__batch"
    ):
        by_launch[batch].append((pk, token, backend))
    return [message for launch in by_launch.values() for message in runner.step_messages(launch)]


def _deliver(message: list[list[str]]) -> list[list[list[str]]]:
    """What `tasks.operations_advance` does with one message, without the countdowns: one step of
    its operations; the follow-up messages it would send, grouped by when they are due."""
    following = defaultdict(list)
    for operation_id, next_step in runner.advance(message).items():
        if not next_step.done:
            following[next_step.again_in].append([operation_id, next_step.token])
    return list(following.values())


@pytest.mark.django_db
def test_r2_200_launches_through_30_percent_transient_faults(settings):
    """With the production settings (COMPUTE_MAX_TRANSIENT_RETRIES, 6) and the messages the
    pipeline really sends: ten launches of 20, one message each, and their follow-ups."""
    assert settings.COMPUTE_MAX_TRANSIENT_RETRIES == 6
    org, owner, project, req = world()
    SimulatedKnobs.objects.create(transient_error_rate=0.3, boot_seconds=0, action_seconds=0)
    access = project_access(owner, org.slug, project.slug)
    for i in range(10):
        services.instance_launch(
            access=access, req=services.LaunchRequest(**{**vars(req), "name": f"r2-{i}", "count": 20})
        )
    started = time.monotonic()
    queue, delivered = _messages_of(project), 0
    first_messages = len(queue)
    while queue and time.monotonic() - started < 120:
        queue += _deliver(queue.pop(0))
        delivered += 1
    assert not queue, "messages still queued after 2 minutes"
    figures = assert_consistent(project)
    ops = Operation.objects.filter(instance__project=project)
    attempts = sum(ops.values_list("attempts", flat=True))
    failures = Counter(ops.filter(state="failed").values_list("error_message", flat=True))
    print(
        f"R2: {figures}, {first_messages} first messages, {delivered} delivered in all, {attempts} transient "
        f"faults retried, failed: {dict(failures) or 'none'}, {time.monotonic() - started:.1f} s"
    )
    assert first_messages == 10  # one per launch: the simulated cloud takes 20 servers in one call
    assert figures["servers"] == 200 and figures["running"] >= 199


# --- R4 -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_r4_50_concurrent_launches_for_10_free_slots():
    org, owner, project, req = world(quota=10)
    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def attempt() -> None:
        try:
            access = project_access(owner, org.slug, project.slug)
            barrier.wait(timeout=30)
            services.instance_launch(access=access, req=req)
            outcomes.append("launched")
        except services.QuotaExceeded:
            outcomes.append("refused")
        except Exception as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = Counter(outcomes)
    print(f"R4 ({connection.vendor}): {dict(counts)} in {time.monotonic() - started:.1f} s")
    assert counts == {"launched": 10, "refused": 40}
    assert Instance.objects.filter(project=project).count() == 10
