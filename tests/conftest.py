from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from portal.catalog.models import Flavor, Image
from portal.compute import services
from portal.compute.models import SimulatedKnobs
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _no_stray_sessions_at_teardown(django_db_setup, django_db_blocker):
    """Worker processes the tests kill, and live-server threads, can leave a PostgreSQL session on
    the test database, and then it is not dropped ("being accessed by other users"). Torn down
    just before the database is: end any session but ours."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Rate-limit counters and used TOTP codes live in the shared cache: start every test clean.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme Research", slug="acme")


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org, name="Web shop", slug="web-shop")


def _member(org, role: Role, email: str):
    return MembershipFactory(organization=org, role=role, user=UserFactory(email=email)).user


@pytest.fixture
def owner(org):
    return _member(org, Role.OWNER, "owner@example.com")


@pytest.fixture
def admin_user(org):
    return _member(org, Role.ADMIN, "admin@example.com")


@pytest.fixture
def member(org):
    return _member(org, Role.MEMBER, "member@example.com")


@pytest.fixture
def viewer(org):
    return _member(org, Role.VIEWER, "viewer@example.com")


@pytest.fixture
def outsider(db):
    """Owner of another organization: signed in, verified, powerful elsewhere, a stranger here."""
    other = OrganizationFactory(name="Other Corp", slug="other")
    ProjectFactory(organization=other, name="Theirs", slug="theirs")
    return _member(other, Role.OWNER, "outsider@example.com")


@pytest.fixture
def client_as():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def users(owner, admin_user, member, viewer, outsider):
    return {"owner": owner, "admin": admin_user, "member": member, "viewer": viewer, "outsider": outsider}


@pytest.fixture
def operator(db):
    """A cloud operator: staff in Django admin, no organization."""
    return UserFactory(email="operator@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(operator, client_as):
    # pytest-django's admin_client builds on an `admin_user` fixture, which here is an
    # organization admin; operators are a different thing.
    return client_as(operator)


@pytest.fixture
def catalog(db):
    """The demo catalog: zones by code (fra1-a, iad1-a, par1-b sold out, fra1-c in maintenance…)."""
    from portal.catalog.demo import load_demo_catalog
    from portal.catalog.models import Zone

    load_demo_catalog()
    return {zone.code: zone for zone in Zone.objects.select_related("region__jurisdiction")}


def worker_env(lease_seconds: int = 150) -> dict:
    """Environment for a Celery worker process that reads this test run's database and broker."""
    import os

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "SIMULATED_BOOT_SECONDS": "1",
        "SIMULATED_ACTION_SECONDS": "1",
        "COMPUTE_POLL_SECONDS": "0.5",
        "COMPUTE_STEP_LEASE_SECONDS": str(lease_seconds),
    }


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """A real `celery worker` process on the configured broker, reading the test database.

    Tests that use it must commit their data (transactional_db), as a second process would.
    """
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = worker_env()
    root = Path(__file__).resolve().parents[1]
    log = open(Path(settings.VAR_DIR) / "worker.log", "w+")  # noqa: SIM115 — closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "threads",
            "-c",
            "2",
            "-l",
            "info",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(1.5)
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.seek(0)
    print(log.read()[-3000:])
    log.close()


# --- Compute: a fast simulated cloud and a launch helper -------------------------------------


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
