"""What the OpenStack backend makes beside a server: keypairs, security groups from the portal's
firewall rules, cloud-init user data for further keys, boot volumes, and image and flavor names
mapped to the cloud's."""

from __future__ import annotations

import base64
import email
import time
import uuid

from portal.compute.backends.openstack import OpenStackBackend
from portal.compute.backends.openstack_mapping import (
    keypair_name,
    security_group_name,
    security_group_rules,
)
from tests.backends.fake_openstack import PASSWORD, backend_options
from tests.backends.openstack_specs import KEY_A, KEY_B, PING_V6, SSH_FROM_OFFICE, spec

# --- keypairs, security groups, user data, disks ------------------------------------------------


def test_keypair_and_security_group_are_made_once_and_reused(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, name="web-1"))
    backend.create_server(spec(zone, name="web-2"))
    assert list(fake_openstack.compute.keypairs) == [keypair_name(KEY_A)]
    [group] = fake_openstack.network.security_groups.values()
    ingress = [r for r in group["security_group_rules"] if r["direction"] == "ingress"]
    assert [
        (r["protocol"], r["port_range_min"], r["port_range_max"], r["remote_ip_prefix"]) for r in ingress
    ] == [("tcp", 22, 22, "203.0.113.7/32")]
    assert {s.security_groups[0] for s in fake_openstack.compute.live_servers()} == {group["name"]}
    assert fake_openstack.calls("POST", r"/os-keypairs$") == 1
    assert fake_openstack.calls("POST", r"/security-groups$") == 1
    assert fake_openstack.calls("POST", r"/security-group-rules$") == 1
    # Other rules, another group (a group's rules never change under a running server).
    backend.create_server(spec(zone, name="web-3", firewall_rules=(SSH_FROM_OFFICE, PING_V6)))
    assert len(fake_openstack.network.security_groups) == 2


def test_a_half_made_security_group_is_completed(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    name = security_group_name(security_group_rules((SSH_FROM_OFFICE,)))
    fake_openstack.handle(
        "POST",
        "/network/v2.0/security-groups",
        {},
        _token_headers(fake_openstack),
        {"security_group": {"name": name}},
    )  # a launch that died before its rules
    backend.create_server(spec(zone))
    [group] = fake_openstack.network.security_groups.values()
    assert [r["port_range_min"] for r in group["security_group_rules"] if r["direction"] == "ingress"] == [22]


def test_no_firewall_allows_all_inbound(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, firewall_rules=()))
    [group] = fake_openstack.network.security_groups.values()
    ingress = {
        (r["ethertype"], r["protocol"], r["remote_ip_prefix"])
        for r in group["security_group_rules"]
        if r["direction"] == "ingress"
    }
    assert ingress == {("IPv4", None, "0.0.0.0/0"), ("IPv6", None, "::/0")}


def test_firewall_rules_translate_to_neutron():
    rules = security_group_rules(
        (
            {"protocol": "udp", "port_from": 60000, "port_to": 61000, "source": "0.0.0.0/0"},
            {"protocol": "tcp", "port_from": None, "port_to": None, "source": "10.1.2.3"},
            PING_V6,
        )
    )
    assert {
        (r["ethertype"], r["protocol"], r["port_range_min"], r["port_range_max"], r["remote_ip_prefix"])
        for r in rules
    } == {
        ("IPv4", "udp", 60000, 61000, "0.0.0.0/0"),
        ("IPv4", "tcp", None, None, "10.1.2.3/32"),
        ("IPv6", "ipv6-icmp", None, None, "::/0"),
    }


def test_further_ssh_keys_go_in_through_cloud_init(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, ssh_keys=(KEY_A, KEY_B)))
    [server] = fake_openstack.compute.live_servers()
    assert server.key_name == keypair_name(KEY_A)  # Nova holds one key per server
    message = email.message_from_string(base64.b64decode(server.user_data).decode())
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert parts["text/x-shellscript"] == "#!/bin/sh\necho hello\n"
    assert parts["text/cloud-config"].startswith("#cloud-config\n")
    assert KEY_B in parts["text/cloud-config"]


def test_larger_root_disk_boots_from_a_volume(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, root_disk_gib=80))  # the flavor's own disk is 25 GiB
    [server] = fake_openstack.compute.live_servers()
    [volume] = server.block_device_mapping
    assert volume["volume_size"] == 80 and volume["source_type"] == "image" and volume["boot_index"] == 0


def test_image_and_flavor_names_can_be_mapped(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    options = backend_options(
        fake_openstack, images={"Debian 12 (bookworm)": "Debian 12"}, flavors={"s-4vcpu-8gb": "m1.large"}
    )
    backend = OpenStackBackend("openstack", **options)
    created = backend.create_server(spec("osl1-a", image="Debian 12 (bookworm)", flavor="s-4vcpu-8gb"))
    [server] = fake_openstack.compute.live_servers()
    assert fake_openstack.image.images[server.image_id]["name"] == "Debian 12"
    assert server.flavor["name"] == "m1.large"
    assert created.flavor == "s-4vcpu-8gb"  # reported in the portal's words
    backend.close()


def _token_headers(cloud) -> dict:
    token = "t-" + uuid.uuid4().hex
    cloud.tokens[token] = time.time() + 60
    return {"X-Auth-Token": token}
