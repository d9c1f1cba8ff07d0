"""Copies of server snapshots (Glance images) between regions of one OpenStack cloud.

Glance has no copy between regions, so the portal does what an operator would: it creates a
`queued` image in the target region's Glance, with the copy's portal UUID and zone among its
properties (`STORAGE_METADATA_KEY`, `ZONE_METADATA_KEY`, as every snapshot of ours), then streams the
source image's data from the source region's Glance into it (`GET …/file` → `PUT …/file`), a chunk at
a time, never holding the image in memory. Glance makes the image `active` once the upload ends.

Unlike the other calls this one holds the worker while the data pass through it (the upload is the
request). A copy interrupted half-way is safe to repeat: Glance puts an image whose upload broke
off back to `queued`, and the repeated call finds the copy by its UUID and uploads into it again.

Mixed into `OpenStackBackend` with `OpenStackStorage`, whose helpers it uses.
"""

from __future__ import annotations

from contextlib import suppress

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import Capability, NotFound, Rejected
from portal.compute.backends.openstack_mapping import SNAPSHOT_GONE, storage_fault
from portal.compute.backends.storage import (
    STORAGE_METADATA_KEY,
    SnapshotCloudState,
    SnapshotCopySpec,
    SnapshotState,
)

JSON = {"Accept": "application/json"}
COPIED_FROM_KEY = "portal-copied-from"  # the source image's id, for the operator
CHUNK_BYTES = 4 * 1024 * 1024


class OpenStackImageCopy:
    def copy_snapshot(self, spec: SnapshotCopySpec) -> SnapshotState:
        source_zone, kind, source_image_id = self._snapshot_target(spec.source_id)
        if kind != "image":
            raise Rejected("Only an image can be copied.", f"{spec.source_id} is a volume snapshot")
        target, source = self._zone(spec.zone), self._zone(source_zone)
        if (target.get("cloud") or "") != (source.get("cloud") or ""):
            raise Rejected(
                "An image is copied only between regions of the same cloud.",
                f"{source_zone} and {spec.zone} are different clouds",
            )
        if (target.get("region") or "") == (source.get("region") or ""):
            raise Rejected(f"The image is already in {spec.zone}'s region.", "copy within one region")
        conn = self._connection(spec.zone)
        with self._cloud("copy image", conn, fault=storage_fault):
            self._require(spec.zone, Capability.IMAGE_COPY)
            self._require(source_zone, Capability.IMAGE_COPY)
            ours = self._our_images(conn, {STORAGE_METADATA_KEY: spec.idempotency_key})
            if ours and ours[0].get("status") != "queued":
                return self._image_state(spec.zone, ours[0])  # made (or being uploaded) already
            source_conn = self._connection(source_zone)
            with self._cloud("copy image", source_conn, gone=("images", source_image_id, SNAPSHOT_GONE)):
                image = self._glance(source_conn, f"/images/{source_image_id}")
            if image.get("status") != "active":
                raise Rejected("Only an available image can be copied.", f"source is {image.get('status')}")
            copy = ours[0] if ours else self._new_copy(conn, spec, image)
            self._upload(conn, source_conn, source_image_id, copy["id"])
            return self._image_state(spec.zone, self._glance(conn, f"/images/{copy['id']}"))

    def _new_copy(self, conn, spec: SnapshotCopySpec, image: dict) -> dict:
        body = {
            "name": spec.name,
            "disk_format": image.get("disk_format") or "qcow2",
            "container_format": image.get("container_format") or "bare",
            "min_disk": int(image.get("min_disk") or 0),
            "min_ram": int(image.get("min_ram") or 0),
            "visibility": "private",
            **self._metadata(spec.idempotency_key, spec.zone),
            COPIED_FROM_KEY: image["id"],
        }
        response = conn.image.post("/images", json=body, headers=JSON)
        sdk_exceptions.raise_from_response(response)
        created = response.json()
        ours = self._our_images(conn, {STORAGE_METADATA_KEY: spec.idempotency_key})
        if ours and ours[0]["id"] != created["id"]:  # a racing copy of ours: keep the oldest
            with suppress(sdk_exceptions.SDKException):
                conn.image.delete(f"/images/{created['id']}", headers=JSON)
            return ours[0]
        return created

    def _upload(self, conn, source_conn, source_image_id: str, copy_id: str) -> None:
        download = source_conn.image.get(f"/images/{source_image_id}/file", stream=True)
        try:
            if download.status_code == 404:
                raise NotFound(SNAPSHOT_GONE, f"image {source_image_id} has no data")
            sdk_exceptions.raise_from_response(download)
            try:
                sdk_exceptions.raise_from_response(
                    conn.image.put(
                        f"/images/{copy_id}/file",
                        data=download.iter_content(CHUNK_BYTES),
                        headers={"Content-Type": "application/octet-stream"},
                    )
                )
            except sdk_exceptions.ConflictException:
                # Another attempt of ours is uploading, or has: its state says which.
                state = self._image_state("", self._glance(conn, f"/images/{copy_id}"))
                if state.state == SnapshotCloudState.ERROR:
                    raise
        finally:
            download.close()
