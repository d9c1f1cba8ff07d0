from __future__ import annotations

import factory
from allauth.account.models import EmailAddress

from portal.accounts.models import User
from portal.tenancy.models import Membership, Organization, Project, Role

PASSWORD = "correct-horse-battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def verified(self, create: bool, extracted: bool | None, **kwargs) -> None:
        """Verified by default; `UserFactory(verified=False)` leaves the address unconfirmed."""
        if create:
            EmailAddress.objects.create(
                user=self,
                email=self.email,
                primary=True,
                verified=extracted if extracted is not None else True,
            )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    quota_instances = 10
    quota_vcpus = 32
    quota_ram_gib = 128
    quota_volume_gib = 1000


class InstanceFactory(factory.django.DjangoModelFactory):
    """A running server in the demo catalog's fra1-a zone (load the catalog first)."""

    class Meta:
        model = "compute.Instance"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"server-{n}")
    zone = factory.LazyFunction(lambda: _catalog("Zone", code="fra1-a"))
    flavor = factory.LazyFunction(lambda: _catalog("Flavor", code="s-1vcpu-2gb"))
    image = factory.LazyFunction(lambda: _catalog("Image", name="Debian 13"))
    root_disk_gib = 50
    status = "running"
    addresses = factory.LazyFunction(lambda: ["100.64.0.10"])


def _catalog(model: str, **lookup):
    from portal.catalog import models
    from portal.catalog.demo import load_demo_catalog

    found = getattr(models, model).objects.filter(**lookup).first()
    if found is None:
        load_demo_catalog()
        found = getattr(models, model).objects.get(**lookup)
    return found
