"""The OpenStack backend's graphical console: Nova's noVNC (`POST …/remote-consoles` with
`{"protocol": "vnc", "type": "novnc"}`), an address of the cloud's noVNC proxy that the customer's
browser opens. The fake's Nova refuses what Nova refuses and its proxy checks the token, so a test
cannot pass on an address the cloud would not serve."""

from __future__ import annotations

import pytest
import requests

from portal.compute.backends import Capability, NotFound, Rejected, Transient
from tests.backends.openstack_specs import B, nova_id, settle, spec
from tests.backends.test_openstack_console import post

NOVNC = {"remote_console": {"protocol": "vnc", "type": "novnc"}}


@pytest.fixture
def zone_with_vnc(openstack_backend):
    backend, zone = openstack_backend
    backend.options["zones"][zone]["graphical_console"] = True
    return backend, zone


@pytest.fixture
def running(zone_with_vnc):
    backend, zone = zone_with_vnc
    server = backend.create_server(spec(zone, name="vnc-1"))
    settle(backend, server.backend_id, B.RUNNING)
    return server.backend_id


def _get(url: str) -> tuple[int, str]:
    answer = requests.get(url, timeout=5)
    return answer.status_code, answer.text


def test_the_fakes_nova_hands_out_novnc_and_nothing_it_does_not_run(running, zone_with_vnc, fake_openstack):
    backend, zone = zone_with_vnc
    conn = backend._connection(zone)
    server_id = nova_id(running)

    wrong_pair = post(conn, server_id, {"remote_console": {"protocol": "vnc", "type": "serial"}})
    assert wrong_pair.status_code == 400 and "Invalid console type serial" in wrong_pair.text
    spice = post(conn, server_id, {"remote_console": {"protocol": "spice", "type": "spice-html5"}})
    assert spice.status_code == 400 and "Unavailable console type spice-html5." in spice.text
    fake_openstack.compute.consoles.vnc_enabled = False
    off = post(conn, server_id, NOVNC)
    assert off.status_code == 400 and "Unavailable console type novnc." in off.text
    fake_openstack.compute.consoles.vnc_enabled = True

    url = post(conn, server_id, NOVNC).json()["remote_console"]["url"]
    assert _get(url)[0] == 200
    made_up = url.rpartition("%3D")[0] + "%3D0c2c2f5e-0000-4000-8000-000000000000"
    assert _get(made_up)[0] == 401


def test_a_zone_has_a_graphical_console_only_when_its_settings_say_so(openstack_backend):
    backend, zone = openstack_backend
    assert Capability.GRAPHICAL_CONSOLE not in backend.capabilities(zone)
    with pytest.raises(Rejected, match="The cloud's graphical consoles are not available in osl1-a"):
        backend.remote_console(f"{zone}:0c2c2f5e-0000-4000-8000-000000000000")

    backend.options["zones"][zone]["graphical_console"] = True
    assert Capability.GRAPHICAL_CONSOLE in backend.capabilities(zone)  # also while the rest is cached
    assert Capability.SERIAL_CONSOLE not in backend.capabilities(zone)  # each kind by its own setting


def test_the_console_address_opens_the_servers_novnc_page(running, zone_with_vnc):
    backend, _ = zone_with_vnc

    console = backend.remote_console(running)

    assert (console.protocol, console.kind) == ("vnc", "novnc")
    assert console.url.startswith("http://127.0.0.1:") and "vnc_lite.html?path=%3Ftoken%3D" in console.url
    status, page = _get(console.url)
    assert status == 200 and "<title>vnc-1 - noVNC</title>" in page
    assert backend.remote_console(running).url != console.url  # a fresh token each time


def test_an_expired_address_is_refused_by_the_clouds_proxy(running, zone_with_vnc, fake_openstack):
    backend, _ = zone_with_vnc
    fake_openstack.compute.consoles.token_ttl = 0.0  # [consoleauth] token_ttl: already over

    assert _get(backend.remote_console(running).url)[0] == 401


def test_nova_refusals_become_the_backends_errors(running, zone_with_vnc, fake_openstack):
    backend, zone = zone_with_vnc

    fake_openstack.compute.consoles.vnc_enabled = False
    with pytest.raises(Rejected, match="The cloud's graphical consoles are not available in osl1-a") as off:
        backend.remote_console(running)
    assert "[vnc]" in off.value.detail and "graphical_console" in off.value.detail
    fake_openstack.compute.consoles.vnc_enabled = True

    fake_openstack.fail_next(1, path="/compute/")
    with pytest.raises(Transient):
        backend.remote_console(running)

    with pytest.raises(NotFound):
        backend.remote_console(f"{zone}:0c2c2f5e-0000-4000-8000-000000000000")

    backend.stop_server(running)
    settle(backend, running, B.STOPPED)
    with pytest.raises(Rejected, match="The server is not running"):
        backend.remote_console(running)


def test_a_cloud_without_the_call(running, zone_with_vnc, fake_openstack):
    backend, _ = zone_with_vnc
    fake_openstack.remove_route("POST", r"/remote-consoles$")
    with pytest.raises(Rejected, match="not available") as missing:
        backend.remote_console(running)
    assert "lacks the call" in missing.value.detail
