"""What the operator offers: where (jurisdictions, regions, zones) and what (flavors, images, prices).

Managed in Django admin. Prices are Decimal in the one currency of `settings.PORTAL_CURRENCY`.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

HOURS_PER_MONTH = Decimal("730")  # the usual cloud-billing month: 365 * 24 / 12


class Jurisdiction(models.Model):
    code = models.SlugField(max_length=16, unique=True, help_text="Short code, e.g. eu, ch, us.")
    name = models.CharField(max_length=80, help_text="e.g. European Union")
    legal_framework = models.CharField(
        max_length=160,
        help_text='The law in plain words, e.g. "EU — GDPR" or "United States — CLOUD Act applies".',
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Certification(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=80, help_text="e.g. ISO 27001, SOC 2, C5, HIPAA-eligible")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Region(models.Model):
    code = models.SlugField(max_length=16, unique=True, help_text="e.g. fra1")
    name = models.CharField(max_length=80, help_text="e.g. Frankfurt")
    city = models.CharField(max_length=80)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 code, e.g. DE")
    jurisdiction = models.ForeignKey(Jurisdiction, on_delete=models.PROTECT, related_name="regions")
    latitude = models.DecimalField(
        max_digits=8, decimal_places=5, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=8, decimal_places=5, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )
    certifications = models.ManyToManyField(Certification, blank=True, related_name="regions")
    is_active = models.BooleanField(default=True, help_text="Inactive regions are hidden from customers.")

    class Meta:
        ordering = ["jurisdiction__name", "name"]

    def __str__(self) -> str:
        return self.name


# Keys that would hold a secret's value; "…_env" and "…_file" name where it is kept instead.
SECRET_KEY_RE = re.compile(r"(password|secret|token|credential|private_key)(?!.*_(env|file)$)", re.IGNORECASE)


class ZoneStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    DEGRADED = "degraded", "Degraded"
    MAINTENANCE = "maintenance", "Maintenance"
    SOLD_OUT = "sold_out", "Sold out"


class Availability(models.TextChoices):
    """What customers are told about a zone's room: never the operator's numbers."""

    AVAILABLE = "available", "Available"
    LIMITED = "limited", "Limited"
    SOLD_OUT = "sold_out", "Sold out"
    CLOSED = "closed", "Closed for maintenance"


class Zone(models.Model):
    # Below either, a zone's capacity is "limited": room for about two of the largest sizes.
    LIMITED_BELOW_VCPUS = 64
    LIMITED_BELOW_RAM_GIB = 256

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="zones")
    code = models.SlugField(max_length=24, unique=True, help_text="e.g. fra1-a")
    status = models.CharField(max_length=16, choices=ZoneStatus.choices, default=ZoneStatus.AVAILABLE)
    backend = models.CharField(
        max_length=32,
        default="simulated",
        help_text="Which compute backend serves this zone (a key of COMPUTE_BACKENDS in settings).",
    )
    backend_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'How the backend reaches this zone, e.g. libvirt {"hosts": ["qemu+ssh://kvm1/system"], '
            '"network": "default"} or OpenStack {"cloud": "prod", "region": "RegionOne", '
            '"availability_zone": "nova", "network": "public"}. No secrets here: passwords and '
            "keys come from clouds.yaml, the environment or files named in settings."
        ),
    )
    backend_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    backend_error = models.TextField(
        blank=True,
        editable=False,
        help_text="Why the backend did not answer at the last check (empty: healthy).",
    )
    free_vcpus = models.PositiveIntegerField(default=0, help_text="As last reported by the backend.")
    free_ram_gib = models.PositiveIntegerField(default=0, help_text="As last reported by the backend.")
    capacity_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["region__jurisdiction__name", "region__name", "code"]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        errors = {}
        if self.backend not in settings.COMPUTE_BACKENDS:
            known = ", ".join(sorted(settings.COMPUTE_BACKENDS))
            errors["backend"] = f"No backend named {self.backend!r} is configured (settings has: {known})."
        if not isinstance(self.backend_settings, dict):
            errors["backend_settings"] = 'Enter a JSON object, e.g. {"hosts": ["qemu+ssh://kvm1/system"]}.'
        else:
            secrets = sorted(key for key in self.backend_settings if SECRET_KEY_RE.search(key))
            if secrets:
                errors["backend_settings"] = (
                    f"Don't store secrets here ({', '.join(secrets)}): name an environment variable "
                    'or a file instead, e.g. "password_env": "OS_PASSWORD_PROD" or "key_file": "/etc/portal/key".'
                )
        if errors:
            raise ValidationError(errors)

    @property
    def availability(self) -> Availability:
        """The one answer every customer-facing page, the API and the launch rules give about room
        here: the operator's status, then the capacity the backend last reported (the reconciler
        refreshes it), so a zone with nothing free reads "sold out" whatever its status says. A
        zone whose capacity was never measured (a new one, before the reconciler's first pass)
        is taken at its status."""
        if not self.region.is_active or self.status == ZoneStatus.MAINTENANCE:
            return Availability.CLOSED
        measured = self.capacity_updated_at is not None or self.free_vcpus or self.free_ram_gib
        if self.status == ZoneStatus.SOLD_OUT or (measured and not (self.free_vcpus and self.free_ram_gib)):
            return Availability.SOLD_OUT
        if measured and (
            self.free_vcpus < self.LIMITED_BELOW_VCPUS or self.free_ram_gib < self.LIMITED_BELOW_RAM_GIB
        ):
            return Availability.LIMITED
        return Availability.AVAILABLE

    @property
    def accepts_launches(self) -> bool:
        """New resources may be placed here (degraded and limited zones still accept)."""
        return self.availability in (Availability.AVAILABLE, Availability.LIMITED)

    @property
    def refusal(self) -> str:
        """Why a zone that does not accept launches refuses them, in the customer's words."""
        return f"{self.code} is {self.availability.label.lower()} right now; choose another zone."


class Flavor(models.Model):
    code = models.SlugField(max_length=32, unique=True, help_text="e.g. s-2vcpu-4gb")
    name = models.CharField(max_length=80)
    vcpus = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    ram_gib = models.PositiveSmallIntegerField("RAM (GiB)", validators=[MinValueValidator(1)])
    root_disk_gib = models.PositiveIntegerField("root disk (GiB)", validators=[MinValueValidator(1)])
    price_hourly = models.DecimalField(max_digits=10, decimal_places=5, validators=[MinValueValidator(0)])
    zones = models.ManyToManyField(Zone, blank=True, related_name="flavors")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["vcpus", "ram_gib", "code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU, {self.ram_gib} GiB)"

    @property
    def price_monthly(self) -> Decimal:
        return (self.price_hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))


class OsFamily(models.TextChoices):
    DEBIAN = "debian", "Debian"
    UBUNTU = "ubuntu", "Ubuntu"
    ROCKY = "rocky", "Rocky Linux"
    ALPINE = "alpine", "Alpine Linux"
    WINDOWS = "windows", "Windows Server"


class ImageQuerySet(models.QuerySet["Image"]):
    def public(self) -> ImageQuerySet:
        """The operator's catalog, offered to every project."""
        return self.filter(is_active=True, project__isnull=True)

    def for_project(self, project) -> ImageQuerySet:
        """What `project` may launch from: the public catalog and its own images (snapshots of its
        servers, images an operator uploaded for it). Never another project's."""
        return self.filter(models.Q(project__isnull=True) | models.Q(project=project), is_active=True)


class Image(models.Model):
    os_family = models.CharField(max_length=16, choices=OsFamily.choices)
    name = models.CharField(max_length=80, help_text="e.g. Debian 13")
    version = models.CharField(max_length=32, help_text="e.g. 13 (trixie)")
    min_disk_gib = models.PositiveIntegerField("minimum disk (GiB)", default=10)
    license_price_hourly = models.DecimalField(
        max_digits=10, decimal_places=5, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    zones = models.ManyToManyField(Zone, blank=True, related_name="images")
    is_active = models.BooleanField(default=True)
    # A project's own image (a server snapshot, or one an operator uploaded for the customer); null:
    # the public catalog. Only that project sees it (`Image.objects.for_project`).
    project = models.ForeignKey(
        "tenancy.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="images"
    )
    backend_refs = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'The cloud\'s own image per zone, {"fra1-a": "<image id>"}: a new server boots that image '
            "instead of the one the backend finds by name. Set for a customer's uploaded image."
        ),
    )

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["os_family", "-version", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        refs = self.backend_refs
        if not isinstance(refs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in refs.items()
        ):
            raise ValidationError(
                {"backend_refs": 'Enter a JSON object of zone code to image id, e.g. {"fra1-a": "img-42"}.'}
            )

    @property
    def is_custom(self) -> bool:
        return self.project_id is not None

    def backend_ref(self, zone_code: str) -> str:
        """The cloud's image id to boot in `zone_code` ("" for a catalog image found by name)."""
        refs = self.backend_refs if isinstance(self.backend_refs, dict) else {}
        return str(refs.get(zone_code, ""))


def currency() -> str:
    return settings.PORTAL_CURRENCY
