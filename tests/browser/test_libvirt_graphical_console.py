"""The graphical console of a real VM in the browser: a server in the libvirt development zone
boots under QEMU (libvirt's embedded driver) with a VNC display on the host's loopback; its page
links to the graphical console, where noVNC (vendored) connects through the portal's websocket
(uvicorn) and draws the server's screen. At 1366 and 390 px
(docs/screenshots/97-console-libvirt-vnc*.png). Skips (or fails under REQUIRE_SERVICES=1) without
libvirt."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Operation
from portal.core.management.commands import libvirt_dev_zone
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.backends.libvirt_env import wait_for
from tests.browser.conftest import sign_in
from tests.compute.test_libvirt_dev_zone import ZONE, dev_var, dev_zone, drive_slowly
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser]

__all__ = ["dev_var"]  # the fixture


def _running_server(owner, project) -> Instance:
    access = project_access(owner, project.organization.slug, project.slug)
    req = services.LaunchRequest(
        name="vnc-vm",
        count=1,
        zone=Zone.objects.get(code=ZONE),
        flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
        image=Image.objects.get(name=libvirt_dev_zone.IMAGE),
        root_disk_gib=25,
    )
    batch = services.instance_launch(access=access, req=req)
    instance = Instance.objects.get(batch=batch)
    drive_slowly(Operation.objects.get(instance=instance, action="create"))  # this test is the worker
    instance.refresh_from_db()
    assert instance.status == "running", instance.fault_message
    return instance


def test_the_graphical_console_of_a_real_vm_in_novnc(dev_var, asgi_server, new_page, shoot):
    dev_zone()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server = _running_server(owner, project)
    detail = asgi_server + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk])

    for width, height, name in (
        (1366, 900, "97-console-libvirt-vnc"),
        (390, 844, "97-console-libvirt-vnc-mobile"),
    ):
        page = new_page(width, height)
        sign_in(page, asgi_server, owner)
        page.goto(detail)
        page.locator(".console-card").get_by_role("link", name="Open graphical console").click()
        page.locator("h1", has_text="Graphical console").wait_for()
        page.locator(".serial-console-state.is-live", has_text="Connected to vnc-vm").wait_for(timeout=30_000)
        canvas = page.locator(".graphical-console-screen canvas").first
        canvas.wait_for()
        box = canvas.bounding_box()
        assert box["width"] > 100 and box["height"] > 60  # drawn, scaled into the box
        assert page.get_by_role("button", name="Send Ctrl-Alt-Del").is_enabled()
        assert not page.get_by_role("button", name="Reconnect").is_visible()  # while connected
        page.wait_for_timeout(1500)  # the first screen update
        shoot(page, name)
        assert not page.csp_violations, page.csp_violations
        if width == 390:
            overflow = page.evaluate("document.getElementById('main').scrollWidth - innerWidth")
            assert overflow <= 0, f"the page is {overflow}px too wide at 390px"
        page.get_by_role("button", name="Disconnect").click()
        page.locator(".serial-console-state", has_text="Disconnected").wait_for()
        assert page.get_by_role("button", name="Reconnect").is_visible()

    wait_for(
        lambda: AuditEvent.objects.filter(action=AuditAction.CONSOLE_CLOSED, actor=owner).count() == 2,
        what="both sessions' close in the audit log",
    )
    opened = AuditEvent.objects.filter(action=AuditAction.CONSOLE_OPENED, actor=owner)
    assert [event.changes["console"] for event in opened] == [[None, "graphical"]] * 2
