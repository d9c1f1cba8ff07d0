"""The OpenStack backend's serial console: Nova's remote console (`POST …/remote-consoles`) opened
as a websocket to the cloud's serial proxy, and the fake's Nova refusing what Nova refuses (so the
backend's tests cannot pass on a fake that accepts what a cloud refuses)."""

from __future__ import annotations

import ssl
import time

import pytest
from openstack import exceptions as sdk_exceptions
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from portal.compute.backends import Capability, ConsoleClosed, NotFound, Rejected, Transient
from tests.backends.openstack_specs import B, nova_id, settle, spec

SERIAL = {"remote_console": {"protocol": "serial", "type": "serial"}}


@pytest.fixture
def zone_with_console(openstack_backend):
    backend, zone = openstack_backend
    backend.options["zones"][zone]["serial_console"] = True
    return backend, zone


@pytest.fixture
def running(zone_with_console):
    backend, zone = zone_with_console
    server = backend.create_server(spec(zone, name="con-1"))
    settle(backend, server.backend_id, B.RUNNING)
    return server.backend_id


def read_until(console, text: bytes, timeout: float = 5) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never came: {seen[-300:]!r}"
        seen += console.read(0.2)
    return seen


def post(conn, server_id: str, body: dict, microversion: str = "2.6"):
    return conn.compute.post(f"/servers/{server_id}/remote-consoles", json=body, microversion=microversion)


# --- the fake's Nova ---------------------------------------------------------------------------


def test_nova_refuses_remote_consoles_as_nova_does(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    conn = backend._connection(zone)
    server = backend.create_server(spec(zone, name="con-refused"))
    server_id = nova_id(server.backend_id)

    building = post(conn, server_id, SERIAL)
    assert building.status_code == 409 and "is not ready" in building.text
    settle(backend, server.backend_id, B.RUNNING)
    assert post(conn, server_id, SERIAL, microversion="2.5").status_code == 404  # no such method yet
    wrong_protocol = post(conn, server_id, {"remote_console": {"protocol": "telnet", "type": "serial"}})
    assert wrong_protocol.status_code == 400 and "'telnet' is not one of" in wrong_protocol.text
    wrong_pair = post(conn, server_id, {"remote_console": {"protocol": "serial", "type": "novnc"}})
    assert wrong_pair.status_code == 400 and "Invalid console type novnc" in wrong_pair.text
    missing = post(conn, server_id, {"remote_console": {"protocol": "serial"}})
    assert missing.status_code == 400 and "'type' is a required property" in missing.text
    assert post(conn, "0c2c2f5e-0000-4000-8000-000000000000", SERIAL).status_code == 404
    fake_openstack.compute.consoles.serial_enabled = False
    disabled = post(conn, server_id, SERIAL)
    assert disabled.status_code == 400 and "Unavailable console type serial." in disabled.text
    fake_openstack.compute.consoles.serial_enabled = True

    answer = post(conn, server_id, SERIAL)
    assert answer.status_code == 200
    assert answer.json()["remote_console"]["url"].startswith("ws://127.0.0.1:")
    backend.stop_server(server.backend_id)
    settle(backend, server.backend_id, B.STOPPED)
    stopped = post(conn, server_id, SERIAL)
    assert stopped.status_code == 409 and "while it is in vm_state stopped" in stopped.text


def test_the_fake_serial_proxy_wants_binary_and_a_valid_token(running, zone_with_console):
    backend, zone = zone_with_console
    url = post(backend._connection(zone), nova_id(running), SERIAL).json()["remote_console"]["url"]

    with pytest.raises(InvalidStatus) as refused:
        connect(url)  # no subprotocol offered
    assert refused.value.response.status_code == 400
    made_up = url.rpartition("=")[0] + "=0c2c2f5e-0000-4000-8000-000000000000"
    with connect(made_up, subprotocols=["binary"]) as stranger, pytest.raises(ConnectionClosed) as expired:
        stranger.recv(timeout=2)
    assert "invalid or has expired" in expired.value.rcvd.reason


# --- the backend -------------------------------------------------------------------------------


def test_a_zone_has_a_serial_console_only_when_its_settings_say_so(openstack_backend):
    backend, zone = openstack_backend
    assert Capability.SERIAL_CONSOLE not in backend.capabilities(zone)
    with pytest.raises(Rejected, match="Interactive serial consoles are not available in osl1-a"):
        backend.open_serial_console(f"{zone}:0c2c2f5e-0000-4000-8000-000000000000")

    backend.options["zones"][zone]["serial_console"] = True
    assert Capability.SERIAL_CONSOLE in backend.capabilities(zone)  # also while the rest is cached


def test_the_serial_console_relays_the_servers_serial_line(running, zone_with_console, fake_openstack):
    backend, _ = zone_with_console

    console = backend.open_serial_console(running)
    try:
        console.write(b"\r")  # a serial line shows nothing until asked: Enter brings the prompt
        read_until(console, b"con-1 login: ")
        console.write(b"dana\r")
        read_until(console, b"Password: ")
        console.write(b"secret\r")
        read_until(console, b"dana@con-1:~$ ")
        console.write(b"echo hello there\r")
        assert b"echo hello there\r\nhello there\r\n" in read_until(console, b"there\r\ndana@")
    finally:
        console.close()
    console.close()  # twice is fine
    with pytest.raises(ConsoleClosed):
        console.read(0.1)
    # The portal offered "binary" and sent no Origin (Nova's proxy checks one only from browsers).
    assert fake_openstack.compute.consoles.connections == [{"subprotocol": "binary", "origin": None}]
    # Nova's answer carried the proxy's token: it was asked once, at microversion 2.6 or later.
    assert fake_openstack.calls("POST", r"/remote-consoles$") == 1


def test_the_console_ends_when_the_server_stops(running, zone_with_console):
    backend, _ = zone_with_console
    console = backend.open_serial_console(running)
    console.write(b"\r")
    read_until(console, b"login: ")

    backend.stop_server(running)
    with pytest.raises(ConsoleClosed, match="The server's console closed"):
        read_until(console, b"never")
    with pytest.raises(ConsoleClosed):
        console.write(b"ls\r")


def test_nova_refusals_become_the_backends_errors(zone_with_console, running, fake_openstack):
    backend, zone = zone_with_console

    fake_openstack.compute.consoles.serial_enabled = False
    with pytest.raises(Rejected, match="Interactive serial consoles are not available in osl1-a") as off:
        backend.open_serial_console(running)
    assert "[serial_console]" in off.value.detail
    fake_openstack.compute.consoles.serial_enabled = True

    fake_openstack.fail_next(1, path="/compute/")
    with pytest.raises(Transient):
        backend.open_serial_console(running)

    with pytest.raises(NotFound):
        backend.open_serial_console(f"{zone}:0c2c2f5e-0000-4000-8000-000000000000")

    backend.stop_server(running)
    settle(backend, running, B.STOPPED)
    with pytest.raises(Rejected, match="The server is not running"):
        backend.open_serial_console(running)


def test_a_cloud_without_the_call_or_its_proxy(zone_with_console, running, fake_openstack, monkeypatch):
    backend, _ = zone_with_console
    fake_openstack.remove_route("POST", r"/remote-consoles$")
    with pytest.raises(Rejected, match="not available") as missing:
        backend.open_serial_console(running)
    assert "lacks the call" in missing.value.detail  # a 404 of the route is not the server gone
    fake_openstack._removed.clear()

    fake_openstack.compute.consoles.stop()  # the proxy is down: connection refused
    monkeypatch.setattr(
        type(fake_openstack.compute.consoles), "proxy_url", property(lambda self: "ws://127.0.0.1:9")
    )
    with pytest.raises(Transient, match="did not answer"):
        backend.open_serial_console(running)


def test_a_nova_older_than_2_6_has_no_remote_consoles(zone_with_console, running, monkeypatch):
    backend, zone = zone_with_console
    conn = backend._connection(zone)
    monkeypatch.setattr(conn.compute, "get_endpoint_data", _endpoint_with_max(conn.compute, "2.5"))
    with pytest.raises(Rejected, match="not available") as old:
        backend.open_serial_console(running)
    assert "microversion 2.6" in old.value.detail


def _endpoint_with_max(adapter, version: str):
    data = adapter.get_endpoint_data()
    data.max_microversion = tuple(int(part) for part in version.split("."))

    def get_endpoint_data(*args, **kwargs):
        return data

    return get_endpoint_data


def test_sdk_sends_what_nova_expects(zone_with_console, running):
    """openstacksdk's own call, as the backend makes it, is what the fake accepts."""
    backend, zone = zone_with_console
    conn = backend._connection(zone)
    console = conn.compute.create_server_remote_console(nova_id(running), protocol="serial", type="serial")
    assert (console.protocol, console.type) == ("serial", "serial")
    with pytest.raises(sdk_exceptions.BadRequestException):
        conn.compute.create_server_remote_console(nova_id(running), protocol="serial", type="novnc")


def _self_signed(directory) -> tuple[ssl.SSLContext, str]:
    """A TLS context for the fake proxy with a certificate for 127.0.0.1, and the certificate's file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serial proxy")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "proxy.pem", directory / "proxy.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


def test_a_wss_proxy_is_trusted_as_the_clouds_api_is(
    zone_with_console, running, fake_openstack, tmp_path, monkeypatch
):
    backend, zone = zone_with_console
    fake_openstack.compute.consoles.tls, cafile = _self_signed(tmp_path)

    with pytest.raises(Rejected, match="could not be opened") as untrusted:  # signed by no one trusted
        backend.open_serial_console(running)
    assert "certificate not trusted" in untrusted.value.detail

    # The cloud's `cacert` (clouds.yaml) is what the API's certificates are checked against: the
    # proxy's too.
    conn = backend._connection(zone)
    monkeypatch.setattr(conn.config, "get_requests_verify_args", lambda: (cafile, None))
    console = backend.open_serial_console(running)
    try:
        console.write(b"\r")
        read_until(console, b"con-1 login: ")
    finally:
        console.close()
