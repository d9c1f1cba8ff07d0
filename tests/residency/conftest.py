from __future__ import annotations

import pytest

from portal.catalog.models import Certification, Jurisdiction, Region
from portal.residency.models import ResidencyPolicy


@pytest.fixture
def make_policy(org):
    def make(*, project=None, name="", jurisdictions=(), regions=(), certifications=()):
        policy = ResidencyPolicy.objects.create(organization=org, project=project, name=name)
        policy.jurisdictions.set(Jurisdiction.objects.filter(code__in=jurisdictions))
        policy.regions.set(Region.objects.filter(code__in=regions))
        policy.certifications.set(Certification.objects.filter(code__in=certifications))
        return policy

    return make
