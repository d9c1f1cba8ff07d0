"""Volumes made before volumes reached the cloud were rows only: no cloud ever held them. They
become errors that say so, detached, and their billing stops (their open segments close now)."""

from django.db import migrations
from django.utils import timezone

NEVER_CREATED = "This volume was never created in the cloud; it is no longer billed."


def forwards(apps, schema_editor):
    Volume = apps.get_model("compute", "Volume")
    UsageSegment = apps.get_model("metering", "UsageSegment")
    now = timezone.now()
    ids = list(Volume.objects.exclude(status="deleted").filter(backend_id="").values_list("pk", flat=True))
    if not ids:
        return
    Volume.objects.filter(pk__in=ids).update(
        status="error", fault_message=NEVER_CREATED, attached_to=None, device="", updated_at=now
    )
    UsageSegment.objects.filter(resource_type="volume", resource_id__in=ids, ended_at__isnull=True).update(
        ended_at=now
    )


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0006_volumes_in_the_cloud"),
        ("metering", "0002_segment_window_indexes"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
