"""The role table, written out cell by cell: a change to portal.tenancy.access must be made here too."""

import pytest

from portal.tenancy.access import ROLE_PERMISSIONS, Perm, role_allows
from portal.tenancy.models import Role

O, A, M, V = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER

EXPECTED = {
    Perm.ORG_VIEW: {O, A, M, V},
    Perm.MEMBERS_VIEW: {O, A, M, V},
    Perm.PROJECT_VIEW: {O, A, M, V},
    Perm.RESOURCE_CREATE: {O, A, M},
    Perm.RESOURCE_OPERATE: {O, A, M},
    Perm.ORG_EDIT: {O, A},
    Perm.MEMBERS_MANAGE: {O, A},
    Perm.PROJECT_CREATE: {O, A},
    Perm.PROJECT_EDIT: {O, A},
    Perm.PROJECT_DELETE: {O, A},
    Perm.AUDIT_VIEW: {O, A},
    Perm.OWNERS_MANAGE: {O},
}


def test_every_permission_is_in_the_table():
    assert set(EXPECTED) == set(Perm)
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("perm", list(Perm))
def test_role_permission_cell(role, perm):
    assert role_allows(role, perm) == (role in EXPECTED[perm])
