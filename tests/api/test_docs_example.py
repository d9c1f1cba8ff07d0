"""The worked example of docs/api.md, run as written against a live server and a real Celery worker:
launch 20 servers in one call, wait until they run, terminate them. The code is read from the
document (only the base URL and the token are swapped in), so the docs can't drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal.api.models import TokenScope
from portal.catalog.demo import load_demo_catalog
from portal.compute.models import Instance, InstanceStatus, Operation, SimulatedKnobs, SshKey
from portal.tenancy.models import Role
from tests.api.conftest import make_token
from tests.api.world import KEY_A
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.worker

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION = "## Example: launch 20 servers, wait until they run, terminate them"


def example_code() -> str:
    text = API_DOC.read_text()
    assert SECTION in text, f"{API_DOC.name} lost its section {SECTION!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(SECTION) :], re.DOTALL)
    assert match, "no Python block under the example heading"
    return match.group(1)


def swap(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"the example no longer contains {old!r} exactly once"
    return code.replace(old, new)


def test_the_worked_example_launches_20_and_terminates_them(
    celery_worker_process, live_server, settings, capsys
):
    # At the default rate limit: the example's polling (one list request every 3 s) stays under it.
    load_demo_catalog()
    SimulatedKnobs.objects.create(boot_seconds=0.5, action_seconds=0.5, transient_error_rate=0)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory()).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop", quota_instances=20)
    SshKey.objects.create(
        project=project,
        name="laptop",
        public_key=KEY_A,
        key_type="ssh-ed25519",
        bits=256,
        fingerprint="SHA256:a",
    )
    _, secret = make_token(owner, org, scope=TokenScope.READ_WRITE)

    code = example_code()
    code = swap(code, '"https://portal.example.com/api/v1/"', repr(live_server.url + "/api/v1/"))
    code = swap(code, '"Bearer npt_…"', repr(f"Bearer {secret}"))
    exec(compile(code, str(API_DOC), "exec"), {"__name__": "api_example"})  # noqa: S102 — our own docs

    servers = Instance.objects.filter(project=project)
    assert sorted(s.name for s in servers) == sorted(f"web-{n}" for n in range(1, 21))
    assert {s.status for s in servers} == {InstanceStatus.TERMINATED}
    # Each came up before it went: its create operation succeeded, then its termination.
    for action in ("create", "terminate"):
        done = Operation.objects.filter(instance__in=servers, action=action, state="succeeded")
        assert done.count() == 20, action
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 20
    assert all(re.fullmatch(r"web-\d+ \['[\d.]+'.*\]", line) for line in printed), printed
