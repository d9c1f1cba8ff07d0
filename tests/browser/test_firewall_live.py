"""A customer attaches a firewall to a running server, in Chromium against a live server with a real
Celery worker on the simulated cloud, and sees the cloud apply it without a reload; the firewall's
page then lists the server with its state. Walked on a laptop (1366 px) and a phone (390 px);
screenshots in docs/screenshots/ (93-…, the phone's with a -mobile suffix)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.compute.backends.firewall import same_rules
from portal.compute.models import FirewallRule, FirewallRuleSet, Instance, SimulatedServer
from portal.tenancy.models import Role
from tests.browser.pages import fitting_shots
from tests.browser.test_storage_journey import launch_shop_db
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SSH = {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"}


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_a_firewall_attached_to_a_running_server_is_applied(
    width, suffix, celery_worker_process, live_server, new_page, shoot
):
    load_demo_catalog()
    shoot = fitting_shots(shoot, suffix)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-from-office", created_by=owner)
    FirewallRule.objects.create(rule_set=rule_set, description="SSH from the office", **SSH)
    server = launch_shop_db(project, owner)

    page = new_page(width=width, height=860 if width > 600 else 844)
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/o/**")
    page.goto(live_server.url + server.get_absolute_url())
    page.locator("h1 .status-running").wait_for(timeout=30_000)
    card = page.locator("#firewall")
    card.get_by_text("all inbound traffic is allowed").wait_for()

    card.get_by_label("Change the firewall").select_option(label="ssh-from-office")
    card.get_by_role("button", name="Apply firewall").click()
    page.get_by_text("Applying the “ssh-from-office” rules to shop-db.").wait_for()
    applied = card.locator(".firewall-state", has_text="Rules applied")
    applied.wait_for(timeout=30_000)  # the page follows it without a reload
    server = Instance.objects.get(pk=server.pk)
    assert server.firewall == rule_set and server.firewall_state == "applied"
    assert same_rules(SimulatedServer.objects.get(backend_id=server.backend_id).firewall_rules, [SSH])
    shoot(page, "93-firewall-live-applied")

    card.get_by_role("link", name="ssh-from-office").click()
    page.wait_for_url(f"**/firewalls/{rule_set.pk}/")
    row = page.locator(".firewall-servers tr", has_text="shop-db")
    assert "Applied" in row.inner_text()
    assert "launched from now on" not in page.content()
    shoot(page, "94-firewall-live-servers")
    assert not page.csp_violations
