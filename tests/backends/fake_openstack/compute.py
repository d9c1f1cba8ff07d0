"""Nova v2.1: flavors, keypairs, limits, hypervisor statistics and servers through their life.

BUILD turns ACTIVE after `boot_seconds`, stop/start/reboot/resize take `action_seconds`, resize
waits in VERIFY_RESIZE for a confirmation, a wrong-state action answers 409 the way Nova words it,
a server whose name contains `no_valid_host_marker` ends in ERROR with Nova's "No valid host was
found" fault, and one booting from a volume in a cloud without Cinder ends in ERROR too. Images come from the cloud's image service, networks and security groups from its
network service.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import time
import uuid

from tests.backends.fake_openstack.compute_console import NovaConsoles
from tests.backends.fake_openstack.compute_firewall import NovaSecurityGroups
from tests.backends.fake_openstack.compute_interfaces import NovaInterfaces
from tests.backends.fake_openstack.compute_password import password_action
from tests.backends.fake_openstack.compute_rescue import rescue_action
from tests.backends.fake_openstack.compute_storage import NovaStorage
from tests.backends.fake_openstack.identity import REGION, REGION_TWO
from tests.backends.fake_openstack.nova_server import (
    NOVA_MAX_MICROVERSION,
    Server,
    nova_error,
    request_microversion,
    version_tuple,
)
from tests.backends.fake_openstack.server import HttpError, Service, now_iso

NOT_FOUND = "The resource could not be found."


class Compute(Service):
    name = "compute"
    catalog_type = "compute"
    catalog_name = "nova"
    endpoint = "/v2.1"
    regions = (REGION,)
    glance_name = "image"  # the Glance of its region, which it boots from and snapshots into

    @property
    def glance(self):
        return getattr(self.cloud, self.glance_name)

    def __init__(
        self,
        cloud,
        *,
        boot_seconds: float = 0.2,
        action_seconds: float = 0.2,
        delete_seconds: float = 0.0,
    ) -> None:
        super().__init__(cloud)
        self.boot_seconds = boot_seconds
        self.action_seconds = action_seconds
        self.delete_seconds = delete_seconds
        self.no_valid_host_marker = "novalidhost"
        self.servers: dict[str, Server] = {}
        self.deleted: dict[str, float] = {}  # id -> when it disappears
        self.keypairs: dict[str, dict] = {}
        self.flavors = {
            f["id"]: f
            for f in (
                {"id": "f-small", "name": "s-1vcpu-1gb", "vcpus": 1, "ram": 1024, "disk": 25},
                {"id": "f-medium", "name": "s-2vcpu-2gb", "vcpus": 2, "ram": 2048, "disk": 50},
                {"id": "f-large", "name": "m1.large", "vcpus": 4, "ram": 8192, "disk": 80},
            )
        }
        self.availability_zones = {"nova"}
        self.limits = {"maxTotalCores": 20, "maxTotalRAMSize": 51200, "maxTotalInstances": 10}
        # None: the hypervisor statistics are admin-only (403), as with Nova's default policy.
        self.hypervisor_statistics: dict | None = None
        self.actions: list[tuple[str, str]] = []  # (server id, action) as asked, refused or not
        self._addresses = itertools.count(10)
        self.storage = NovaStorage(self)  # volume attachments and createImage
        self.consoles = NovaConsoles(self)  # remote consoles and the serial proxy behind them
        self.firewall = NovaSecurityGroups(self)  # a server's security groups, changed while it runs
        self.password_unsupported = (
            ""  # "agent" / "driver": changePassword fails as Nova's do (compute_password)
        )
        self.interfaces = NovaInterfaces(self)  # ports of the project's networks (os-interface)

    def stop(self) -> None:
        self.consoles.stop()

    def add_server(
        self, name: str, *, vm_state: str = "active", metadata: dict | None = None, tags: list | None = None
    ) -> Server:
        """A server made some other way (another tool, an operator, a crashed launch)."""
        with self.cloud.lock:
            server = Server(
                id=str(uuid.uuid4()),
                name=name,
                flavor=self.flavors["f-small"],
                image_id=next(iter(self.glance.images)),
                metadata=dict(metadata or {}),
                tags=list(tags or []),
                key_name=None,
                security_groups=["default"],
                availability_zone="nova",
                addresses={},
                user_data=None,
                vm_state=vm_state,
                task_state=None,
            )
            self.servers[server.id] = server
            return server

    def live_servers(self) -> list[Server]:
        with self.cloud.lock:
            self.settle()
            return list(self.servers.values())

    # --- state -------------------------------------------------------------------------------

    def later(self, server: Server, seconds: float, landing) -> None:
        server.lands_at = time.monotonic() + seconds
        server.landing = landing

    def _settle(self, server: Server) -> None:
        if self.cloud.is_frozen:
            return
        if server.landing is not None and server.lands_at <= time.monotonic():
            landing, server.landing = server.landing, None
            landing(server)

    def settle(self) -> None:
        for server in list(self.servers.values()):
            self._settle(server)
        now = time.monotonic()
        for server_id, gone_at in list(self.deleted.items()) if not self.cloud.is_frozen else ():
            if gone_at <= now:
                self.servers.pop(server_id, None)
                del self.deleted[server_id]

    def server(self, server_id: str) -> Server:
        self.settle()
        server = self.servers.get(server_id)
        if server is None:
            raise nova_error(404, f"Instance {server_id} could not be found.")
        return server

    def _used(self) -> tuple[int, int, int]:
        live = list(self.servers.values())
        return sum(s.flavor["vcpus"] for s in live), sum(s.flavor["ram"] for s in live), len(live)

    # --- requests --------------------------------------------------------------------------

    def _nova_version(self, version: str) -> dict:
        current = version == "v2.1"
        return {
            "id": version,
            "status": "CURRENT" if current else "SUPPORTED",
            "version": NOVA_MAX_MICROVERSION if current else "",
            "min_version": "2.1" if current else "",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/{version}/"}],
        }

    def not_found(self, headers) -> tuple:
        return self._versioned(headers, (404, {"itemNotFound": {"code": 404, "message": NOT_FOUND}}, {}))

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        return self._versioned(headers, self._nova(method, rest, query, headers, body))

    def _versioned(self, headers, answer: tuple) -> tuple:
        status, payload, extra = answer
        extra = {
            **extra,
            "OpenStack-API-Version": f"compute {request_microversion(headers)}",
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }
        return status, payload, extra

    def _nova(self, method: str, rest: list, query: dict, headers, body):
        if method == "GET" and not rest:
            return 300, {"versions": [self._nova_version("v2.0"), self._nova_version("v2.1")]}, {}
        if rest[0] != "v2.1":
            raise nova_error(404, NOT_FOUND)
        route = rest[1:]
        if method == "GET" and not route:
            return 200, {"version": self._nova_version("v2.1")}, {}
        microversion = request_microversion(headers)
        match (method, route):
            case ("GET", ["flavors"]) | ("GET", ["flavors", "detail"]):
                return 200, {"flavors": [self._flavor_view(f) for f in self.flavors.values()]}, {}
            case ("GET", ["flavors", flavor_id]):
                if flavor_id not in self.flavors:
                    raise nova_error(404, f"Flavor {flavor_id} could not be found.")
                return 200, {"flavor": self._flavor_view(self.flavors[flavor_id])}, {}
            case ("GET", ["os-keypairs"]):
                return 200, {"keypairs": [{"keypair": k} for k in self.keypairs.values()]}, {}
            case ("GET", ["os-keypairs", name]):
                if name not in self.keypairs:
                    raise nova_error(404, f"Keypair {name} not found for user u-portal")
                return 200, {"keypair": self.keypairs[name]}, {}
            case ("POST", ["os-keypairs"]):
                return self._keypair_create(body["keypair"])
            case ("GET", ["limits"]):
                cores, ram, count = self._used()
                absolute = {
                    **self.limits,
                    "totalCoresUsed": cores,
                    "totalRAMUsed": ram,
                    "totalInstancesUsed": count,
                    "maxServerMeta": 128,
                    "maxTotalKeypairs": 100,
                    "maxServerGroups": 10,
                    "maxServerGroupMembers": 10,
                }
                return 200, {"limits": {"rate": [], "absolute": absolute}}, {}
            case ("GET", ["os-hypervisors", "statistics"]):
                if version_tuple(microversion) >= (2, 88):
                    raise nova_error(404, NOT_FOUND)
                if self.hypervisor_statistics is None:
                    raise nova_error(
                        403, "Policy doesn't allow os_compute_api:os-hypervisors:list-detail to be performed."
                    )
                return 200, {"hypervisor_statistics": self.hypervisor_statistics}, {}
            case ("POST", ["servers"]):
                return self._server_create(body["server"], microversion)
            case ("GET", ["servers"]) | ("GET", ["servers", "detail"]):
                servers = list(self.servers.values())
                if "tags" in query:
                    wanted = set(query["tags"][0].split(","))
                    servers = [s for s in servers if wanted <= set(s.tags)]
                if "name" in query:
                    servers = [s for s in servers if re.search(query["name"][0], s.name)]
                views = [self._server_view(s, microversion) for s in servers]
                if route == ["servers"]:
                    views = [{"id": v["id"], "name": v["name"], "links": v["links"]} for v in views]
                return 200, {"servers": views}, {}
            case ("GET", ["servers", server_id]):
                return 200, {"server": self._server_view(self.server(server_id), microversion)}, {}
            case ("DELETE", ["servers", server_id]):
                server = self.server(server_id)
                if server_id not in self.deleted:
                    server.task_state, server.landing = "deleting", None
                    self.storage.server_deleted(server)
                    self.interfaces.server_deleted(server)
                    self.deleted[server_id] = time.monotonic() + self.delete_seconds
                    self.settle()
                return 204, None, {}
            case ("POST", ["servers", server_id, "action"]):
                return self._server_action(self.server(server_id), body, microversion)
        answer = self.storage.route(method, route, body, microversion)
        if answer is None:
            answer = self.consoles.route(method, route, body, microversion)
        if answer is None:
            answer = self.firewall.route(method, route, body, microversion)
        if answer is None:
            answer = self.interfaces.route(method, route, body, microversion)
        if answer is None:
            raise nova_error(404, NOT_FOUND)
        return answer

    def _flavor_view(self, flavor: dict) -> dict:
        return {
            **flavor,
            "OS-FLV-DISABLED:disabled": False,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "os-flavor-access:is_public": True,
            "swap": "",
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/v2.1/flavors/{flavor['id']}"}],
        }

    def _keypair_create(self, data: dict):
        name = data["name"]
        if name in self.keypairs:
            raise nova_error(409, f"Key pair '{name}' already exists.")
        public_key = data.get("public_key", "")
        if not re.match(
            r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$", public_key.strip()
        ):
            raise nova_error(400, "Keypair data is invalid: failed to generate fingerprint")
        digest = hashlib.md5(public_key.split()[1].encode()).hexdigest()  # noqa: S324
        self.keypairs[name] = {
            "name": name,
            "public_key": public_key,
            "fingerprint": ":".join(digest[i : i + 2] for i in range(0, 32, 2)),
            "type": "ssh",
            "user_id": "u-portal",
        }
        return 200, {"keypair": self.keypairs[name]}, {}

    def _server_create(self, data: dict, microversion: str):
        flavor = self.flavors.get(data.get("flavorRef", ""))
        if flavor is None:
            raise nova_error(400, "Invalid flavorRef provided.")
        mappings = data.get("block_device_mapping_v2") or []
        image_id = data.get("imageRef") or next(
            (m.get("uuid") for m in mappings if m.get("source_type") == "image"), ""
        )
        if image_id not in self.glance.images:
            raise nova_error(400, f"Image {image_id} could not be found.")
        if self.glance.images[image_id]["status"] != "active":
            raise nova_error(400, f"Image {image_id} is not active.")
        _check_min_disk(self.glance.images[image_id], flavor, mappings)
        if data.get("key_name") and data["key_name"] not in self.keypairs:
            raise nova_error(400, "Invalid key_name provided.")
        for group in data.get("security_groups") or []:
            if not any(
                group["name"] in (g["id"], g["name"]) for g in self.cloud.network.security_groups.values()
            ):
                raise nova_error(400, f"Unable to find security_group with name or uuid '{group['name']}'")
        zone = data.get("availability_zone") or "nova"
        if zone not in self.availability_zones:
            raise nova_error(400, "The requested availability zone is not available")
        user_data = data.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except ValueError:
                raise nova_error(400, "User data needs to be valid base 64.") from None
        networks = data.get("networks")
        if networks is None and version_tuple(microversion) >= (2, 37):
            raise nova_error(400, "Invalid input for field/attribute networks. Value: None.")
        addresses = {}
        for network in networks if isinstance(networks, list) else [{"uuid": "auto"}]:
            net = self.cloud.network.networks.get(network.get("uuid", "")) or next(
                iter(self.cloud.network.networks.values())
            )
            addresses[net["name"]] = [
                {"addr": f"203.0.113.{next(self._addresses)}", "version": 4, "OS-EXT-IPS:type": "fixed"}
            ]
        for key, value in (data.get("metadata") or {}).items():
            if not isinstance(value, str) or len(key) > 255 or len(value) > 255:
                raise nova_error(400, "Invalid input for field/attribute metadata.")
        cores, ram, count = self._used()
        if cores + flavor["vcpus"] > self.limits["maxTotalCores"] >= 0:
            raise nova_error(
                403,
                f"Quota exceeded for cores: Requested {flavor['vcpus']}, but already used {cores} of "
                f"{self.limits['maxTotalCores']} cores",
            )
        if ram + flavor["ram"] > self.limits["maxTotalRAMSize"] >= 0:
            raise nova_error(
                403,
                f"Quota exceeded for ram: Requested {flavor['ram']}, but already used {ram} of "
                f"{self.limits['maxTotalRAMSize']} ram",
            )
        if count + 1 > self.limits["maxTotalInstances"] >= 0:
            raise nova_error(
                403,
                "Quota exceeded for instances: Requested 1, but already used "
                f"{count} of {self.limits['maxTotalInstances']} instances",
            )
        server = Server(
            id=str(uuid.uuid4()),
            name=data["name"],
            flavor=flavor,
            image_id=image_id,
            metadata=dict(data.get("metadata") or {}),
            tags=list(data.get("tags") or []),
            key_name=data.get("key_name"),
            security_groups=[
                next(
                    g["name"]
                    for g in self.cloud.network.security_groups.values()
                    if group["name"] in (g["id"], g["name"])
                )
                for group in data.get("security_groups") or []
            ]
            or ["default"],
            availability_zone=zone,
            addresses=addresses,
            user_data=user_data,
            block_device_mapping=mappings,
        )
        self.servers[server.id] = server
        fault = ""
        if self.no_valid_host_marker in server.name:
            fault = "No valid host was found. There are not enough hosts available."
        elif "volume" not in self.cloud.services and any(
            m.get("destination_type") == "volume" for m in mappings
        ):
            # nova-compute asks Cinder for the boot volume and finds no block-storage endpoint.
            fault = f"Build of instance {server.id} aborted: Failure prepping block device."
        if fault:

            def fail(s: Server, message=fault) -> None:
                s.vm_state, s.task_state = "error", None
                s.fault = {
                    "code": 500,
                    "created": now_iso(),
                    "message": message,
                    "details": 'Traceback (most recent call last):\n  File "nova/conductor/manager.py" ...',
                }

            self.later(server, self.boot_seconds, fail)
        else:

            def booted(s: Server) -> None:
                s.vm_state, s.task_state = "active", None
                s.console = [
                    f"[    0.000000] Linux version 6.1.0-28-cloud-amd64 ({s.name})",
                    f"{s.name} login: ",
                ]

            self.later(server, self.boot_seconds, booted)
        view = {
            "id": server.id,
            "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/v2.1/servers/{server.id}"}],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": name} for name in server.security_groups],
            "adminPass": "not-for-you",
        }
        return 202, {"server": view}, {}

    def _server_view(self, server: Server, microversion: str) -> dict:
        if version_tuple(microversion) >= (2, 47):
            flavor_view = {
                "original_name": server.flavor["name"],
                "vcpus": server.flavor["vcpus"],
                "ram": server.flavor["ram"],
                "disk": server.flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "extra_specs": {},
            }
        else:
            flavor_view = {"id": server.flavor["id"], "links": []}
        view = {
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "OS-EXT-STS:vm_state": server.vm_state,
            "OS-EXT-STS:task_state": server.task_state,
            "OS-EXT-STS:power_state": 1 if server.vm_state == "active" else 4,
            "OS-EXT-AZ:availability_zone": server.availability_zone,
            "addresses": server.addresses,
            "flavor": flavor_view,
            "image": "" if server.block_device_mapping else {"id": server.image_id, "links": []},
            "metadata": server.metadata,
            "tags": server.tags,
            "key_name": server.key_name,
            "security_groups": [{"name": name} for name in server.security_groups],
            "created": server.created,
            "updated": now_iso(),
            "tenant_id": "p-portal",
            "user_id": "u-portal",
            "hostId": hashlib.sha224(b"host1").hexdigest(),
            "accessIPv4": "",
            "accessIPv6": "",
            "progress": 0,
            "config_drive": "",
            "locked": False,
            "description": None,
            "os-extended-volumes:volumes_attached": [
                {"id": a["volume_id"], "delete_on_termination": False} for a in server.volumes
            ],
            "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/v2.1/servers/{server.id}"}],
        }
        if server.fault is not None:
            view["fault"] = server.fault
        return view

    def _server_action(self, server: Server, body: dict, microversion: str):
        (action, args), *_ = body.items()
        self.actions.append((server.id, action))

        def refuse(check: str) -> HttpError:
            # nova.api.openstack.common.raise_http_conflict_for_instance_invalid_state
            if server.task_state is not None:
                return nova_error(
                    409,
                    f"Cannot '{check}' instance {server.id} while it is in task_state {server.task_state}",
                )
            return nova_error(
                409, f"Cannot '{check}' instance {server.id} while it is in vm_state {server.vm_state}"
            )

        def lands(vm_state: str):
            def land(s: Server) -> None:
                s.vm_state, s.task_state = vm_state, None

            return land

        if server.task_state == "deleting":
            raise refuse(action)
        match action:
            case "os-start":
                if server.vm_state != "stopped" or server.task_state is not None:
                    raise refuse("start")
                server.task_state = "powering-on"
                self.later(server, self.action_seconds, lands("active"))
            case "os-stop":
                if server.vm_state not in ("active", "error") or server.task_state is not None:
                    raise refuse("stop")
                server.task_state = "powering-off"
                self.later(server, self.action_seconds, lands("stopped"))
            case "reboot":
                hard = (args or {}).get("type", "").upper() == "HARD"
                allowed = ("active", "stopped", "error", "paused", "suspended") if hard else ("active",)
                if server.vm_state not in allowed or (server.task_state is not None and not hard):
                    raise refuse("reboot")
                server.task_state = "rebooting_hard" if hard else "rebooting"
                self.later(server, self.action_seconds, lands("active"))
            case "resize":
                flavor = self.flavors.get(str((args or {}).get("flavorRef", "")))
                if flavor is None:
                    raise nova_error(400, "Invalid flavorRef provided.")
                if server.vm_state not in ("active", "stopped") or server.task_state is not None:
                    raise refuse("resize")
                if flavor["id"] == server.flavor["id"]:
                    raise nova_error(400, "When resizing, instances must change flavor!")
                server.task_state, server.stopped_before_resize = "resize_prep", server.vm_state == "stopped"

                def migrated(s: Server, flavor=flavor) -> None:
                    s.old_flavor, s.flavor = s.flavor, flavor
                    s.vm_state, s.task_state = "resized", None

                self.later(server, self.action_seconds, migrated)
            case "confirmResize":
                if server.vm_state != "resized":
                    raise refuse("confirmResize")
                if server.landing is not None:  # a confirmation is already on its way
                    raise nova_error(400, "Instance has not been resized.")
                self.later(
                    server,
                    self.action_seconds / 2,
                    lands("stopped" if server.stopped_before_resize else "active"),
                )
            case "os-getConsoleOutput":
                if server.vm_state == "building":
                    raise nova_error(409, f"Instance {server.id} is not ready")
                length = (args or {}).get("length")
                lines = server.console if length in (None, -1) else server.console[-int(length) :]
                return 200, {"output": "\n".join(lines) + "\n"}, {}
            case "unshelve":
                if server.vm_state != "shelved_offloaded":
                    raise refuse("unshelve")
                server.task_state = "unshelving"
                self.later(server, self.action_seconds, lands("active"))
            case "createImage":
                return self.storage.create_image(server, args, microversion)
            case "rebuild":
                return self.storage.rebuild(server, args, microversion)
            case "addSecurityGroup" | "removeSecurityGroup":
                return self.firewall.action(server, action, args)
            case "rescue" | "unrescue":
                return rescue_action(self, server, action, args, refuse, lands)
            case "changePassword":
                return password_action(self, server, args, refuse)
            case _:
                raise nova_error(400, f"There is no such action: {action}")
        return 202, None, {}


def _check_min_disk(image: dict, flavor: dict, mappings: list) -> None:
    """Nova refuses a root disk smaller than the image's `min_disk` (a snapshot's is its server's)."""
    min_disk, gib = image.get("min_disk") or 0, 1024**3
    volume = next((m for m in mappings if m.get("destination_type") == "volume"), None)
    if volume is not None and (volume.get("volume_size") or 0) < min_disk:
        raise nova_error(
            400,
            "Volume is smaller than the minimum size specified in image metadata. Volume size is "
            f"{(volume.get('volume_size') or 0) * gib} bytes, minimum size is {min_disk * gib} bytes.",
        )
    if volume is None and 0 < flavor["disk"] < min_disk:
        raise nova_error(
            400,
            "Flavor's disk is smaller than the minimum size specified in image metadata. Flavor disk is "
            f"{flavor['disk'] * gib} bytes, minimum size is {min_disk * gib} bytes.",
        )


class ComputeRegionTwo(Compute):
    """The Nova of the cloud's second region: servers of its own, booted from RegionTwo's Glance."""

    name = "compute2"
    regions = (REGION_TWO,)
    glance_name = "image2"
