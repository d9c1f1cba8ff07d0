"""Nova's side of storage: `os-volume_attachments` (attach, list, show, detach) and the `createImage`
action, which makes a Glance image of the server's disk.

Attaching reserves the Cinder volume (it must be `available`), shows it `attaching` and, after the
compute service's `action_seconds`, `in-use` with the device Nova chose (`/dev/vdb`, `/dev/vdc`…);
detaching shows it `detaching`, then `available`. As with `cross_az_attach = False` in nova.conf, a
volume in another availability zone than the server's is refused. A server deleted with volumes
attached frees them. `createImage` moves the server through the `image_snapshot` and
`image_uploading` task states while its image goes `queued` → `saving` → `active`; a server deleted
meanwhile takes its unfinished image with it, as Nova cleans up a failed snapshot.

`rebuild` (nova.api.openstack.compute.servers `_action_rebuild`, nova.compute.api `rebuild`) replaces
the server's disk by an image's: `imageRef` is required, the image must exist (400 "Cannot find
image for rebuild"), be active and fit the flavor's disk (400), the server must be ACTIVE, SHUTOFF
or ERROR with no task under way (409); a volume-backed server takes another image only from
microversion 2.93. Given `metadata` replaces the server's. The server shows REBUILD (task
`rebuilding`), then ACTIVE, or SHUTOFF again when it was stopped.
"""

from __future__ import annotations

import uuid

from tests.backends.fake_openstack.nova_server import Server, nova_error, version_tuple
from tests.backends.fake_openstack.server import now_iso

# The vm_states Nova attaches a volume or takes an image in.
SETTLED = ("active", "stopped", "paused", "suspended")


class NovaStorage:
    def __init__(self, compute) -> None:
        self.compute = compute
        self.cross_az_attach = False
        self.snapshot_bytes = 1288490189  # what an uploaded snapshot of a small server weighs (1.2 GiB)

    @property
    def cloud(self):
        return self.compute.cloud

    def route(self, method: str, route: list, body: dict | None, microversion: str):
        """Answer an `os-volume_attachments` request, or None for a route that is not one."""
        match (method, route):
            case ("GET", ["servers", server_id, "os-volume_attachments"]):
                server = self.compute.server(server_id)
                views = [self._view(server, a, microversion) for a in server.volumes]
                return 200, {"volumeAttachments": views}, {}
            case ("POST", ["servers", server_id, "os-volume_attachments"]):
                return self._attach(self.compute.server(server_id), body, microversion)
            case ("GET", ["servers", server_id, "os-volume_attachments", volume_id]):
                server = self.compute.server(server_id)
                return (
                    200,
                    {
                        "volumeAttachment": self._view(
                            server, self._attachment(server, volume_id), microversion
                        )
                    },
                    {},
                )
            case ("DELETE", ["servers", server_id, "os-volume_attachments", volume_id]):
                return self._detach(self.compute.server(server_id), volume_id)
        return None

    def _check_state(self, server: Server, action: str, vm_states: tuple = SETTLED) -> None:
        """nova.compute.api.check_instance_state: the vm_state first, then no task under way."""
        if server.vm_state not in vm_states:
            raise nova_error(
                409, f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
            )
        if server.task_state is not None:
            raise nova_error(
                409, f"Cannot '{action}' instance {server.id} while it is in task_state {server.task_state}"
            )

    def _attachment(self, server: Server, volume_id: str) -> dict:
        for attachment in server.volumes:
            if attachment["volume_id"] == volume_id:
                return attachment
        raise nova_error(404, f"No volume Block Device Mapping with id {volume_id}.")

    def _attach(self, server: Server, body: dict | None, microversion: str):
        data = (body or {}).get("volumeAttachment")
        if not isinstance(data, dict) or not data.get("volumeId"):
            raise nova_error(
                400,
                f"Invalid input for field/attribute volumeAttachment. Value: {data}. 'volumeId' is a required property",
            )
        volume_id = data["volumeId"]
        self._check_state(server, "attach_volume")
        cinder = self.cloud.volume
        volume = cinder.volume(volume_id)  # 404 as Cinder words it, which Nova passes on
        if any(a["volume_id"] == volume_id for a in server.volumes):
            raise nova_error(400, f"Invalid volume: volume {volume_id} already attached")
        if not self.cross_az_attach and volume.availability_zone != server.availability_zone:
            raise nova_error(
                400,
                f"Invalid volume: Instance {server.id} and volume {volume_id} are not in the same "
                f"availability_zone. Instance is in {server.availability_zone}. Volume is in "
                f"{volume.availability_zone}",
            )
        cinder.reserve(volume_id)
        used = {a["device"] for a in server.volumes}
        device = next(
            f"/dev/vd{letter}" for letter in "bcdefghijklmnopqrstuvwxyz" if f"/dev/vd{letter}" not in used
        )
        attachment = {"volume_id": volume_id, "device": device, "attachment_id": str(uuid.uuid4())}
        server.volumes.append(attachment)
        volume.status = "attaching"

        def attached(v) -> None:
            v.status = "in-use"
            v.attachments = [
                {
                    "id": volume_id,
                    "attachment_id": attachment["attachment_id"],
                    "volume_id": volume_id,
                    "server_id": server.id,
                    "host_name": "compute-1",
                    "device": device,
                    "attached_at": now_iso(),
                }
            ]

        cinder.later(volume, self.compute.action_seconds, attached)
        return 200, {"volumeAttachment": self._view(server, attachment, microversion)}, {}

    def _detach(self, server: Server, volume_id: str):
        attachment = self._attachment(server, volume_id)
        self._check_state(server, "detach_volume", (*SETTLED, "resized"))
        cinder = self.cloud.volume
        volume = cinder.volumes.get(volume_id)
        if volume is None or volume.status != "in-use":
            raise nova_error(
                400,
                "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status "
                "must be 'attached' to detach.",
            )
        volume.status = "detaching"

        def detached(v) -> None:
            v.status, v.attachments = "available", []
            if attachment in server.volumes:
                server.volumes.remove(attachment)

        cinder.later(volume, self.compute.action_seconds, detached)
        return 202, None, {}

    def _view(self, server: Server, attachment: dict, microversion: str) -> dict:
        view = {
            "id": attachment["volume_id"],
            "serverId": server.id,
            "volumeId": attachment["volume_id"],
            "device": attachment["device"],
        }
        if version_tuple(microversion) >= (2, 70):
            view["tag"] = None
        if version_tuple(microversion) >= (2, 79):
            view["delete_on_termination"] = False
        if version_tuple(microversion) >= (2, 89):
            del view["id"]
            view["attachment_id"] = attachment["attachment_id"]
            view["bdm_uuid"] = str(uuid.uuid4())
        return view

    def server_deleted(self, server: Server) -> None:
        """Nova detaches a deleted server's volumes, and deletes an image it had not finished."""
        volumes = getattr(self.cloud, "volume", None)
        for attachment in server.volumes:
            volume = volumes.volumes.get(attachment["volume_id"]) if volumes else None
            if volume is not None:
                volume.status, volume.attachments, volume.landing = "available", [], None
        server.volumes = []
        images = self.compute.glance.images
        for image_id, image in list(images.items()):
            if image.get("instance_uuid") == server.id and image["status"] != "active":
                del images[image_id]

    # --- rebuild ------------------------------------------------------------------------------

    def rebuild(self, server: Server, args, microversion: str):
        if not isinstance(args, dict) or not args.get("imageRef"):
            raise nova_error(
                400,
                f"Invalid input for field/attribute rebuild. Value: {args}. 'imageRef' is a required property",
            )
        metadata = args.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or any(not isinstance(v, str) or len(k) > 255 or len(v) > 255 for k, v in metadata.items())
        ):
            raise nova_error(400, "Invalid input for field/attribute metadata.")
        image = self.cloud.image.images.get(str(args["imageRef"]))
        if image is None or image.get("status") == "deleted":
            raise nova_error(400, "Cannot find image for rebuild")
        self._check_state(server, "rebuild", vm_states=("active", "stopped", "error"))
        if image["status"] != "active":
            raise nova_error(400, f"Image {image['id']} is not active.")
        gib = 1024**3
        volume_backed = any(m.get("destination_type") == "volume" for m in server.block_device_mapping)
        if volume_backed and image["id"] != server.image_id and version_tuple(microversion) < (2, 93):
            raise nova_error(
                400,
                f"Image {image['id']} is unacceptable: Unable to rebuild with a different image for a volume-backed server.",
            )
        if not volume_backed and 0 < server.flavor["disk"] < (image.get("min_disk") or 0):
            raise nova_error(
                400,
                "Flavor's disk is smaller than the minimum size specified in image metadata. Flavor disk is "
                f"{server.flavor['disk'] * gib} bytes, minimum size is {image['min_disk'] * gib} bytes.",
            )
        if not volume_backed and 0 < server.flavor["disk"] * gib < (image.get("size") or 0):
            raise nova_error(
                400,
                "Flavor's disk is too small for requested image. Flavor disk is "
                f"{server.flavor['disk'] * gib} bytes, image is {image['size']} bytes.",
            )
        was_stopped = server.vm_state == "stopped"
        server.task_state, server.image_id = "rebuilding", image["id"]
        if metadata is not None:
            server.metadata = dict(metadata)

        def rebuilt(s: Server) -> None:
            s.vm_state, s.task_state = ("stopped" if was_stopped else "active"), None
            s.fault = None

        self.compute.later(server, self.compute.action_seconds, rebuilt)
        return 202, {"server": self.compute._server_view(server, microversion)}, {}

    # --- createImage --------------------------------------------------------------------------

    def create_image(self, server: Server, args, microversion: str):
        if not isinstance(args, dict) or not args.get("name"):
            raise nova_error(
                400,
                f"Invalid input for field/attribute createImage. Value: {args}. 'name' is a required property",
            )
        metadata = args.get("metadata") or {}
        if not isinstance(metadata, dict) or any(
            not isinstance(v, str) or len(k) > 255 or len(v) > 255 for k, v in metadata.items()
        ):
            raise nova_error(400, "Invalid input for field/attribute metadata.")
        self._check_state(server, "createImage")
        glance = self.compute.glance
        source = glance.images.get(server.image_id) or {}
        # Nova keeps max(the image's min_disk, the flavor's root disk) and hands it on to the snapshot.
        properties = {
            "image_type": "snapshot",
            "instance_uuid": server.id,
            "base_image_ref": server.image_id,
            "user_id": "u-portal",
            "owner_project_name": "portal-customers",
            **metadata,
        }
        image = glance.add_image(
            args["name"],
            status="queued",
            min_disk=max(source.get("min_disk", 0), server.flavor["disk"]),
            visibility="private",
            owner="p-portal",
            size=None,
            disk_format=None,
            container_format=None,
            **properties,
        )
        server.task_state = "image_snapshot"
        half = self.compute.action_seconds / 2

        def uploaded(s: Server) -> None:
            s.task_state = None
            if image["id"] in glance.images:
                image.update(
                    status="active", size=self.snapshot_bytes, disk_format="qcow2", container_format="bare"
                )

        def uploading(s: Server) -> None:
            s.task_state = "image_uploading"
            image["status"] = "saving"
            self.compute.later(s, half, uploaded)

        self.compute.later(server, half, uploading)
        if version_tuple(microversion) >= (2, 45):
            return 202, {"image_id": image["id"]}, {}
        return 202, None, {"Location": f"{self.cloud.url}/{glance.name}/v2/images/{image['id']}"}
