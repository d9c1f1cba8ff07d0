import pytest

from portal.compute.models import ACTIONS, Action, Instance, InstanceStatus
from portal.compute.models.instances import TRANSITIONS

S = InstanceStatus

EXPECTED_ACTIONS = {
    S.PENDING: {Action.TERMINATE},
    S.PROVISIONING: {Action.TERMINATE},
    S.RUNNING: {Action.STOP, Action.REBOOT, Action.HARD_REBOOT, Action.TERMINATE},
    S.STOPPING: set(),
    S.STOPPED: {Action.START, Action.RESIZE, Action.TERMINATE},
    S.STARTING: set(),
    S.REBOOTING: set(),
    S.RESIZING: set(),
    S.REBUILDING: set(),  # (a restore is asked from the Snapshots section: services/restores.py)
    S.RESCUING: set(),
    S.RESCUE: {Action.TERMINATE},
    S.UNRESCUING: set(),
    S.TERMINATING: set(),
    S.TERMINATED: set(),
    S.ERROR: {Action.TERMINATE},
}


# Rescue mode: allowed by the status, but offered only where the zone has it (not in available_actions).
RESCUE_ACTIONS = {S.RUNNING: {Action.RESCUE}, S.STOPPED: {Action.RESCUE}, S.RESCUE: {Action.UNRESCUE}}


@pytest.mark.parametrize("status", list(S))
def test_actions_per_state(status):
    instance = Instance(status=status)
    assert {rule.action for rule in instance.available_actions} == EXPECTED_ACTIONS[status]
    allowed = EXPECTED_ACTIONS[status] | RESCUE_ACTIONS.get(status, set())
    for action in Action:
        if action != Action.CREATE:
            assert instance.allows(action) == (action in allowed)


def test_rescue_is_entered_from_running_or_stopped_and_left_for_running():
    for start in (S.RUNNING, S.STOPPED):
        assert Instance(status=start).can_become(S.RESCUING)
    assert ACTIONS[Action.RESCUE].done == S.RESCUE and ACTIONS[Action.UNRESCUE].done == S.RUNNING
    # A failed unrescue leaves it in rescue; a failed rescue leaves it as the cloud says.
    assert S.RESCUE in TRANSITIONS[S.UNRESCUING]
    assert {S.RUNNING, S.STOPPED} <= TRANSITIONS[S.RESCUING]


def test_every_action_moves_along_allowed_transitions():
    for rule in ACTIONS.values():
        for start in rule.allowed_from:
            assert rule.during in TRANSITIONS[start], (rule.action, start)
        assert rule.done in TRANSITIONS[rule.during] or rule.done == rule.during


def test_a_restored_disk_leaves_the_server_as_it_was():
    from portal.compute.models import REBUILD_FROM

    for start in REBUILD_FROM:
        assert S.REBUILDING in TRANSITIONS[start] and start in TRANSITIONS[S.REBUILDING]


def test_terminated_is_final_and_error_can_only_be_terminated():
    assert TRANSITIONS[S.TERMINATED] == frozenset()
    assert TRANSITIONS[S.ERROR] == frozenset({S.TERMINATING})
    assert Instance(status=S.RUNNING).can_become(S.STOPPING)
    assert not Instance(status=S.STOPPED).can_become(S.REBOOTING)
