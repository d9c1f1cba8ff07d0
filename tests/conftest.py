from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


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
