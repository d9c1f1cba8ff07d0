"""`manage.py libvirt_dev_zone`: the zone it configures boots a real VM (the busybox guest, under
QEMU through libvirt's embedded driver), launched and terminated through the portal's own service
and runner, and the server's page shows what the VM printed on its console.

Needs the same Debian packages as tests/backends/libvirt_env.py: without them these tests skip,
or fail when REQUIRE_SERVICES=1. The guest's kernel is cached where the libvirt fixtures keep it (or their copy QEMU's user can read)."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.backends import NotFound, get_backend
from portal.compute.backends import libvirt_guest as guest
from portal.compute.models import Instance, Operation
from portal.core.management.commands import libvirt_dev_zone
from tests.backends import libvirt_env
from tests.steps import drive

ZONE = libvirt_dev_zone.DEFAULT_ZONE
# Not $TMPDIR, and not "portal-lv-…" (libvirt_env sweeps those as roots): the VAR_DIR of one test.
VAR_PREFIX = "portal-lvdz-"


def _sweep(var: Path) -> None:
    root = var / "libvirt" / "root"
    if root.exists():
        libvirt_env.sweep_root(root)
    shutil.rmtree(var, ignore_errors=True)


@pytest.fixture
def dev_var(settings) -> Iterator[Path]:
    """A VAR_DIR of its own (short, for QEMU's sockets), swept of VMs afterwards; the guest's files
    come from the libvirt fixtures' cache. Skips (or fails) when libvirt can't run here."""
    libvirt_env.session_guest()
    for stale in libvirt_env.SHORT_TMP.glob(f"{VAR_PREFIX}*"):
        if not libvirt_env._owner_alive(stale):  # left by a run that was killed
            _sweep(stale)
    var = Path(tempfile.mkdtemp(prefix=VAR_PREFIX, dir=libvirt_env.SHORT_TMP))
    var.chmod(0o755)  # QEMU may run as "nobody" (see the backend's docs)
    (var / "owner.pid").write_text(str(os.getpid()))
    settings.VAR_DIR = var
    yield var
    _sweep(var)


def dev_zone(**options) -> str:
    out = io.StringIO()
    call_command("libvirt_dev_zone", force=True, cache_dir=libvirt_env.guest_cache(), stdout=out, **options)
    return out.getvalue()


def drive_slowly(operation: Operation, seconds: float = 40) -> None:
    """The worker's loop, in this process: run the operation's steps until it is finished."""
    drive(operation, limit=int(seconds / 0.3), pause=0.3)


def test_missing_packages_are_named_and_nothing_changes(db, monkeypatch):
    monkeypatch.setattr(guest, "missing_packages", lambda: ["qemu-system-x86", "libvirt-dev", "pkg-config"])
    monkeypatch.setattr(guest, "binding_missing", lambda: True)
    with pytest.raises(CommandError) as refused:  # manage.py prints it, no traceback, and exits 1
        call_command("libvirt_dev_zone", force=True)
    assert refused.value.returncode == 1
    assert "sudo apt-get install qemu-system-x86 libvirt-dev pkg-config" in str(refused.value)
    assert ".venv/bin/pip install -e '.[libvirt]'" in str(refused.value)
    assert not Zone.objects.filter(code=ZONE).exists()


def test_refuses_to_run_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("libvirt_dev_zone")
    assert not Zone.objects.filter(code=ZONE).exists()


def test_a_server_launched_in_the_dev_zone_boots_and_its_page_shows_the_console(
    dev_var, access, project, owner, client_as, django_capture_on_commit_callbacks
):
    printed = dev_zone()
    zone = Zone.objects.get(code=ZONE)
    assert f"Zone {ZONE} in Amsterdam created" in printed and "dev-kvm-1" in printed
    root = dev_var / "libvirt" / "root"
    assert zone.backend == "libvirt"
    assert zone.backend_settings["hosts"] == [f"qemu:///embed?root={root}"]
    assert zone.backend_settings["domain_type"] == "qemu"
    assert zone.backend_settings.get("embed_user") == guest.embed_user()
    assert zone.free_vcpus > 0 and zone.backend_error == ""
    image = Image.objects.get(name=libvirt_dev_zone.IMAGE)
    assert list(image.zones.all()) == [zone]
    assert set(zone.flavors.values_list("code", flat=True)) == set(libvirt_dev_zone.SMALL_FLAVORS)

    # Idempotent: a second run changes nothing.
    assert "configured (it existed)" in dev_zone()
    again = Zone.objects.get(code=ZONE)
    assert again.backend_settings == zone.backend_settings
    assert Zone.objects.filter(code=ZONE).count() == 1 and Image.objects.filter(name=image.name).count() == 1

    req = services.LaunchRequest(
        name="hello-vm",
        count=1,
        zone=again,
        flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
        image=image,
        root_disk_gib=25,
    )
    with django_capture_on_commit_callbacks():  # no broker: this test is the worker
        batch = services.instance_launch(access=access, req=req)
    instance = Instance.objects.get(batch=batch)
    drive_slowly(Operation.objects.get(instance=instance, action="create"))
    instance.refresh_from_db()
    assert instance.status == "running", instance.fault_message

    client = client_as(owner)
    console = reverse("compute:instance_console", args=[project.organization.slug, project.slug, instance.pk])
    booted = f"{libvirt_env.MARKER} hello-vm {instance.pk}"

    def console_when_booted() -> str | None:
        text = client.get(console, HTTP_HX_REQUEST="true").content.decode()
        return text if booted in text else None

    body = libvirt_env.wait_for(console_when_booted, timeout=30, what="the boot line on the server's console")
    assert "Linux version" in body  # the kernel's own boot log, not only our line
    assert 'class="console"' in body

    with django_capture_on_commit_callbacks():
        terminate = services.instance_action(
            access=access, instance=instance, action="terminate", confirm_name=instance.name
        )
    drive_slowly(terminate)
    instance.refresh_from_db()
    assert instance.status == "terminated"
    backend = get_backend("libvirt")
    assert backend.list_servers(ZONE) == []
    with pytest.raises(NotFound):
        backend.get_server(instance.backend_id)
