"""Operator admin: sign-in through allauth, a second factor for staff, every page opens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import generate_totp_secret
from allauth.mfa.utils import encrypt
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.api.models import ApiToken
from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.demo import load_demo_catalog
from portal.compute.models import Instance, Network, Operation
from portal.core.models import OutboxMessage
from portal.ipam.models import AddressAllocation, ExhaustionAlert
from portal.residency.models import ResidencyPolicy
from portal.statements.models import Statement
from portal.tenancy import services
from portal.tenancy.models import Invitation, Role
from tests.api.rows import api_admin_rows
from tests.budgets.rows import budget_admin_rows
from tests.factories import PASSWORD, UserFactory
from tests.ipam.rows import ipam_admin_rows
from tests.statements.rows import statement_admin_rows

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
SEARCHABLE = [model for model in REGISTERED if admin.site._registry[model].get_search_fields(None)]


def _with_totp(user):
    Authenticator.objects.create(
        user=user, type=Authenticator.Type.TOTP, data={"secret": encrypt(generate_totp_secret())}
    )
    return user


@pytest.fixture
def staff(db):
    return UserFactory(email="operator@example.com", is_staff=True)


@pytest.fixture
def superuser(db):
    return _with_totp(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))


@pytest.fixture
def require_mfa(settings):
    settings.PORTAL_ADMIN_REQUIRE_MFA = True


# --- Sign-in goes through allauth ------------------------------------------------------------


def test_admin_login_page_sends_anonymous_users_to_allauth(client):
    response = client.get("/admin/login/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_anonymous_admin_visit_ends_on_the_portal_sign_in_and_comes_back(client, superuser, require_mfa):
    chain = client.get("/admin/", follow=True)
    assert chain.redirect_chain[-1][0].startswith(reverse("account_login"))
    assert chain.status_code == 200

    signed_in = client.post(chain.redirect_chain[-1][0], {"login": superuser.email, "password": PASSWORD})

    # The operator has TOTP, so allauth asks for the code before admin opens.
    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("mfa_authenticate")
    assert client.get("/admin/").status_code == 302


def test_admin_login_form_cannot_be_used_to_bypass_allauth(client, staff):
    """Django's own admin login has no rate limit and no MFA stage: it must not sign anyone in."""
    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session


# --- Second factor for staff -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/tenancy/project/", "/admin/accounts/user/"])
def test_staff_without_mfa_is_sent_to_set_it_up(client_as, staff, require_mfa, path):
    client = client_as(staff)

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_index")
    page = client.get(response["Location"])
    assert "Operators must turn on two-factor authentication" in page.content.decode()


def test_staff_with_totp_gets_into_admin(client_as, staff, require_mfa):
    client = client_as(_with_totp(staff))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert "operations" in response.content.decode()


def test_mfa_is_not_demanded_when_the_setting_is_off(client_as, staff, settings):
    settings.PORTAL_ADMIN_REQUIRE_MFA = False

    assert client_as(staff).get("/admin/").status_code == 200


@pytest.mark.parametrize("with_mfa", [False, True])
def test_customers_cannot_open_admin(client_as, owner, require_mfa, with_mfa):
    if with_mfa:
        _with_totp(owner)
    client = client_as(owner)

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403
    assert "Catalog, customers and quotas" not in response.content.decode()
    assert client.get("/admin/accounts/user/", follow=True).status_code == 403


# --- Every registered model ------------------------------------------------------------------


@pytest.fixture
def populated(owner, member, project, superuser):
    """At least one row for every model registered in admin."""
    org = project.organization
    services.organization_create(user=owner, name="Audited Ltd")  # audit events
    Invitation.objects.create(
        organization=org,
        email="new@example.com",
        role=Role.MEMBER,
        token_hash="0" * 64,
        invited_by=owner,
        expires_at=timezone.now() + timedelta(days=7),
    )
    Group.objects.create(name="Operators")
    load_demo_catalog()
    ResidencyPolicy.objects.create(organization=org, name="EU only")
    _compute_rows(project, owner)
    budget_admin_rows(project, owner)
    api_admin_rows(project, owner)
    statement_admin_rows(project)
    ipam_admin_rows(project)
    OutboxMessage.objects.create(
        subject="Hello",
        body="Hi",
        from_email="no-reply@localhost",
        to=["a@example.com"],
        next_attempt_at=timezone.now(),
    )
    Client(HTTP_USER_AGENT="TestBrowser/1.0").post(
        reverse("account_login"), {"login": member.email, "password": PASSWORD}
    )  # a user session
    return org


def _compute_rows(project, owner) -> None:
    from portal.compute.models import (
        BackendOrphan,
        FirewallRule,
        FirewallRuleSet,
        Network,
        NetworkPort,
        Operation,
        SimulatedKnobs,
        SimulatedNetwork,
        SimulatedServer,
        SimulatedVolume,
        Snapshot,
        SshKey,
        Volume,
    )
    from tests.factories import InstanceFactory

    instance = InstanceFactory(project=project)
    Operation.objects.create(instance=instance, action="create", deadline=timezone.now() + timedelta(hours=1))
    Volume.objects.create(project=project, name="data", zone=instance.zone, size_gib=10)
    Snapshot.objects.create(
        project=project, zone=instance.zone, name="before-upgrade", kind="server", source_instance=instance
    )
    SshKey.objects.create(
        project=project,
        name="k",
        public_key="ssh-ed25519 AAAA",
        key_type="ssh-ed25519",
        bits=256,
        fingerprint="SHA256:x",
    )
    rule_set = FirewallRuleSet.objects.create(project=project, name="web")
    FirewallRule.objects.create(
        rule_set=rule_set, protocol="tcp", port_from=22, port_to=22, source="0.0.0.0/0"
    )
    SimulatedKnobs.objects.create()
    SimulatedServer.objects.create(
        backend_id="sim-1",
        idempotency_key=str(instance.pk),
        zone_code="fra1-a",
        name="x",
        vcpus=1,
        ram_gib=1,
        flavor_code="s",
        state="running",
    )
    BackendOrphan.objects.create(backend="simulated", zone_code="fra1-a", backend_id="sim-2")
    SimulatedVolume.objects.create(
        backend_id="simvol-1",
        idempotency_key="k",
        zone_code="fra1-a",
        name="v",
        size_gib=1,
        state="available",
    )
    network = Network.objects.create(project=project, name="lan", zone=instance.zone, cidr="10.20.0.0/24")
    NetworkPort.objects.create(network=network, instance=instance, status="attached", address="10.20.0.2")
    Operation.objects.create(
        network=network, action="network_create", deadline=timezone.now() + timedelta(hours=1)
    )
    SimulatedNetwork.objects.create(
        backend_id="simnet-1",
        idempotency_key="k",
        zone_code="fra1-a",
        name="lan",
        cidr="10.20.0.0/24",
        state="available",
    )


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_superuser_can_open_every_changelist(client_as, superuser, require_mfa, populated, model):
    client = client_as(superuser)
    assert model._default_manager.exists(), "the fixture should give every model a row"

    response = client.get(_admin_url(model, "changelist"))

    assert response.status_code == 200
    assert 'id="result_list"' in response.content.decode()


@pytest.mark.parametrize("model", SEARCHABLE, ids=lambda m: m._meta.label)
def test_superuser_can_search_every_changelist(client_as, superuser, require_mfa, populated, model):
    """The search box must work; a search field naming a missing column is a 500 for the operator."""
    response = client_as(superuser).get(_admin_url(model, "changelist"), {"q": "example"})

    assert response.status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_superuser_can_open_every_change_page(client_as, superuser, require_mfa, populated, model):
    obj = model._default_manager.order_by("pk").first()

    response = client_as(superuser).get(_admin_url(model, "change", obj.pk))

    assert response.status_code == 200


# Audit events are append-only; invitations carry a secret only the e-mail holds; residency
# policies belong to customers (every change audited in their organization); statements are
# written only by the month-closing task; outgoing mail only by the portal.
NOT_ADDABLE = {
    AuditEvent,
    Invitation,
    ResidencyPolicy,
    Instance,
    Network,
    Operation,
    Statement,
    ApiToken,
    OutboxMessage,
    AddressAllocation,
    ExhaustionAlert,
}
ADDABLE = [model for model in REGISTERED if model not in NOT_ADDABLE]


@pytest.mark.parametrize("model", sorted(NOT_ADDABLE, key=str), ids=lambda m: m._meta.label)
def test_operators_cannot_add_customer_owned_or_append_only_rows(client_as, superuser, require_mfa, model):
    assert client_as(superuser).get(_admin_url(model, "add")).status_code == 403


@pytest.mark.parametrize("model", ADDABLE, ids=lambda m: m._meta.label)
def test_superuser_can_open_every_add_page(client_as, superuser, require_mfa, model):
    response = client_as(superuser).get(_admin_url(model, "add"))

    assert response.status_code == 200


def _admin_add_user(client: Client, email: str, password: str):
    return client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": email,
            "password1": password,
            "password2": password,
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "emailaddress_set-TOTAL_FORMS": "0",
            "emailaddress_set-INITIAL_FORMS": "0",
        },
    )


def _can_sign_in(email: str, password: str) -> bool:
    browser = Client()
    browser.post(reverse("account_login"), {"login": email, "password": password})
    return "_auth_user_id" in browser.session


NEW_PASSWORD = "Operator-made-Pass-11"


def test_operator_can_create_a_user_in_admin_who_can_sign_in(client_as, superuser, require_mfa):
    response = _admin_add_user(client_as(superuser), "created@example.com", NEW_PASSWORD)

    assert response.status_code == 302
    created = type(superuser).objects.get(email="created@example.com")
    assert created.check_password(NEW_PASSWORD)
    assert not created.is_staff
    assert _can_sign_in("created@example.com", NEW_PASSWORD)


def test_user_created_in_admin_with_capitals_in_the_address_can_sign_in(client_as, superuser, require_mfa):
    """allauth looks addresses up in lower case; the portal must store them that way."""
    response = _admin_add_user(client_as(superuser), "Created.Person@Example.com", NEW_PASSWORD)
    assert response.status_code == 302

    assert _can_sign_in("created.person@example.com", NEW_PASSWORD), (
        "a user added in admin as 'Created.Person@Example.com' cannot sign in: stored as "
        f"{type(superuser).objects.get(email__iexact='created.person@example.com').email!r}"
    )


def test_admin_refuses_a_second_account_for_the_same_address_in_other_case(
    client_as, superuser, require_mfa, owner
):
    response = _admin_add_user(client_as(superuser), "Owner@Example.com", NEW_PASSWORD)

    assert type(owner).objects.filter(email__iexact="owner@example.com").count() == 1, (
        "admin created a second account for owner@example.com"
    )
    assert response.status_code == 200  # the form comes back with an error


def test_audit_events_cannot_be_added_changed_or_deleted_in_admin(
    client_as, superuser, require_mfa, populated
):
    client = client_as(superuser)
    event = AuditEvent.objects.order_by("pk").first()
    before = AuditEvent.objects.count()

    assert client.get(_admin_url(AuditEvent, "add")).status_code == 403
    assert client.post(_admin_url(AuditEvent, "add"), {"action": AuditAction.ORG_CREATED}).status_code == 403
    assert client.get(_admin_url(AuditEvent, "delete", event.pk)).status_code == 403
    assert client.post(_admin_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    changed = client.post(_admin_url(AuditEvent, "change", event.pk), {"action": AuditAction.ORG_UPDATED})
    assert changed.status_code == 403
    bulk = client.post(
        _admin_url(AuditEvent, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert bulk.status_code in {200, 302}

    assert AuditEvent.objects.count() == before
    event.refresh_from_db()
    assert event.action == AuditAction.ORG_CREATED
    listing = client.get(_admin_url(AuditEvent, "changelist")).content.decode()
    assert "Add audit event" not in listing
    assert "delete_selected" not in listing


def test_invitations_cannot_be_added_in_admin(client_as, superuser, require_mfa):
    assert client_as(superuser).get(_admin_url(Invitation, "add")).status_code == 403


def test_deleting_a_user_in_admin_keeps_their_audit_trail(
    client_as, superuser, require_mfa, populated, member
):
    """The audit log is append-only, but removing a person must still work (actor is SET_NULL)."""
    org = populated
    services_event = AuditEvent.objects.create(
        action=AuditAction.MEMBER_ADDED, actor=member, actor_email=member.email
    )
    client = client_as(superuser)

    response = client.post(_admin_url(type(member), "delete", member.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not type(member).objects.filter(pk=member.pk).exists()
    services_event.refresh_from_db()
    assert services_event.actor is None
    assert services_event.actor_email == "member@example.com"
    assert not org.memberships.filter(user_id=member.pk).exists()


# --- The index reads well -----------------------------------------------------------------------


def test_admin_index_has_one_accounts_section_and_plural_names(client_as, superuser, require_mfa):
    page = client_as(superuser).get(reverse("admin:index")).content.decode()

    assert page.count(">Accounts</a>") == 1, "allauth's e-mail addresses made a second Accounts section"
    assert "Residency policies" in page and "policys" not in page


def test_a_users_email_addresses_are_on_their_page(client_as, superuser, require_mfa):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.get_or_create(user=superuser, email=superuser.email, defaults={"verified": True})

    page = client_as(superuser).get(_admin_url(type(superuser), "change", superuser.pk)).content.decode()

    assert 'name="emailaddress_set-0-email"' in page and superuser.email in page


def test_simulated_settings_list_says_which_defaults_are_in_effect(
    client_as, superuser, require_mfa, settings
):
    from portal.compute.models import SimulatedKnobs

    settings.SIMULATED_BACKEND = {**settings.SIMULATED_BACKEND, "boot_seconds": 7.5, "fail_marker": "doom"}
    client = client_as(superuser)

    listing = client.get(_admin_url(SimulatedKnobs, "changelist")).content.decode()
    assert "runs on the defaults from the environment: boot 7.5 s" in listing
    assert "fail marker &quot;doom&quot;" in listing
    add_page = client.get(_admin_url(SimulatedKnobs, "add")).content.decode()
    assert 'name="boot_seconds" value="7.5"' in add_page  # the form starts from what is in effect

    SimulatedKnobs.objects.create()
    listing = client.get(_admin_url(SimulatedKnobs, "changelist")).content.decode()
    assert "defaults from the environment" not in listing
