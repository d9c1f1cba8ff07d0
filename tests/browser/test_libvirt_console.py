"""The libvirt development zone in a real browser: launch a server there from the wizard, a real
Celery worker boots it under QEMU (libvirt's embedded driver), and its page shows what the VM
printed on its serial console. Skips (or fails under REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.models import Zone
from portal.compute.models import Instance
from portal.core.management.commands.libvirt_dev_zone import IMAGE
from portal.tenancy.models import Role
from tests.backends.libvirt_env import MARKER
from tests.browser.wizard import choose, launch_from_wizard
from tests.compute.test_libvirt_dev_zone import ZONE, dev_var, dev_zone
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]

__all__ = ["dev_var"]  # the fixture


def test_a_vm_launched_from_the_wizard_boots_and_its_page_shows_the_console(
    dev_var, celery_worker_process, live_server, new_page, shoot
):
    dev_zone()
    zone = Zone.objects.get(code=ZONE)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")

    page = new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.goto(live_server.url + reverse("compute:launch", args=[org.slug, project.slug]))
    page.fill("input[name=name]", "hello-vm")
    choose(page, page.locator(f"input[name=zone][value='{zone.pk}']"), IMAGE, "Starter 1")
    launch_from_wizard(page, "Launch server")
    page.locator(".status-running").first.wait_for(timeout=40_000)

    page.get_by_role("link", name="hello-vm").click()
    page.locator("h1 .status-running").wait_for()
    instance = Instance.objects.get(project=project, name="hello-vm")
    console = page.locator("#console")
    deadline = time.monotonic() + 30
    while f"{MARKER} hello-vm {instance.pk}" not in console.inner_text():  # the guest is still booting
        assert time.monotonic() < deadline, console.inner_text()
        page.locator(".console-card").get_by_role("link", name="Refresh").click()
        time.sleep(1)
    assert "Linux version" in console.inner_text()
    shoot(page, "52-libvirt-console")
    assert not page.csp_violations
