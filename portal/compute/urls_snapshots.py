# Snapshots, backups and the project's own images (pages in portal/compute/views/snapshots.py).
from django.urls import path

from portal.compute.views import image_copy, snapshots

P = "o/<slug:org_slug>/p/<slug:project_slug>/"

urlpatterns = [
    path(P + "snapshots/", snapshots.snapshots, name="snapshots"),
    path(P + "snapshots/<uuid:snapshot_id>/delete/", snapshots.snapshot_remove, name="snapshot_delete"),
    path(P + "snapshots/<uuid:snapshot_id>/copy/", image_copy.snapshot_copy_page, name="snapshot_copy"),
    path(P + "images/", snapshots.images, name="images"),
    path(P + "images/<int:image_id>/delete/", snapshots.image_remove, name="image_delete"),
    path(P + "servers/<uuid:instance_id>/backups/", snapshots.instance_backups, name="instance_backups"),
    path(P + "servers/<uuid:instance_id>/restore/", snapshots.instance_restore, name="instance_restore"),
]
