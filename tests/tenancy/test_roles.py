"""The role table, written out cell by cell: a change to portal.tenancy.access must be made here too."""

import pytest

from portal.tenancy.access import ROLE_PERMISSIONS, Perm, role_allows
from portal.tenancy.models import Role

OW, A, M, V = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER

EXPECTED = {
    Perm.ORG_VIEW: {OW, A, M, V},
    Perm.MEMBERS_VIEW: {OW, A, M, V},
    Perm.PROJECT_VIEW: {OW, A, M, V},
    Perm.RESOURCE_CREATE: {OW, A, M},
    Perm.RESOURCE_OPERATE: {OW, A, M},
    Perm.CONSOLE: {OW, A, M},
    Perm.ORG_EDIT: {OW, A},
    Perm.MEMBERS_MANAGE: {OW, A},
    Perm.PROJECT_CREATE: {OW, A},
    Perm.PROJECT_EDIT: {OW, A},
    Perm.PROJECT_DELETE: {OW, A},
    Perm.AUDIT_VIEW: {OW, A},
    Perm.POLICY_EDIT: {OW, A},
    Perm.BILLING_VIEW: {OW, A},
    Perm.OWNERS_MANAGE: {OW},
}


def test_every_permission_is_in_the_table():
    assert set(EXPECTED) == set(Perm)
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("perm", list(Perm))
def test_role_permission_cell(role, perm):
    assert role_allows(role, perm) == (role in EXPECTED[perm])
