"""SSH keys: parsing real keys made by ssh-keygen, the keys page, duplicates, delete, roles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import SshKey
from portal.compute.sshkeys import InvalidKey, parse_public_key
from tests.factories import ProjectFactory


@pytest.fixture
def keygen(tmp_path: Path):
    """Make a key pair with the real ssh-keygen: returns (public key line, `ssh-keygen -lf` line, private key)."""
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing: install Debian's openssh-client package.")
    made = 0

    def make(*args: str, comment: str = "me@laptop") -> tuple[str, str, str]:
        nonlocal made
        made += 1
        path = tmp_path / f"key{made}"
        subprocess.run(
            ["ssh-keygen", "-q", *args, "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        listed = subprocess.run(
            ["ssh-keygen", "-lf", f"{path}.pub"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return Path(f"{path}.pub").read_text().strip(), listed.strip(), path.read_text()

    return make


def _url(project, name: str = "compute:ssh_keys", *args) -> str:
    return reverse(name, args=[project.organization.slug, project.slug, *args])


# --- Parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "key_type", "bits"),
    [
        (("-t", "ed25519"), "ssh-ed25519", 256),
        (("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256", 256),
        (("-t", "ecdsa", "-b", "384"), "ecdsa-sha2-nistp384", 384),
        (("-t", "ecdsa", "-b", "521"), "ecdsa-sha2-nistp521", 521),
        (("-t", "rsa", "-b", "2048"), "ssh-rsa", 2048),
        (("-t", "rsa", "-b", "3072"), "ssh-rsa", 3072),
    ],
)
def test_accepted_keys_have_the_fingerprint_ssh_keygen_prints(keygen, args, key_type, bits):
    public, listed, _ = keygen(*args)
    key = parse_public_key(public)
    size, fingerprint, *_ = listed.split()
    assert (key.key_type, key.bits) == (key_type, bits)
    assert key.fingerprint == fingerprint
    assert int(size) == bits
    assert key.comment == "me@laptop"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: k("-t", "rsa", "-b", "1024")[0], "This RSA key has 1024 bits; use at least 2048"),
        (lambda k: k("-t", "dsa")[0], "DSA keys are no longer safe"),
        (lambda k: k("-t", "ed25519")[2], "That is a private key"),
        (lambda k: "hello world", "not valid base64"),
        (lambda k: "ssh-ed25519", "A public key looks like"),
        (lambda k: "", "Paste a public key"),
        (lambda k: k("-t", "ed25519")[0].replace("ssh-ed25519", "ssh-rsa", 1), "type does not match"),
    ],
    ids=["rsa-1024", "dsa", "private", "garbage", "type-only", "empty", "mismatched-type"],
)
def test_refused_keys_say_why(keygen, make, message):
    with pytest.raises(InvalidKey, match=message):
        parse_public_key(make(keygen))


# --- The page ---------------------------------------------------------------------------------


def test_adding_a_key_shows_type_bits_and_fingerprint(project, owner, client_as, keygen):
    public, listed, _ = keygen("-t", "ed25519", comment="alice@laptop")
    client = client_as(owner)
    response = client.post(_url(project), {"name": "", "public_key": public})
    assert response.status_code == 302
    key = SshKey.objects.get(project=project)
    assert key.name == "alice@laptop"  # the comment, when no name is given
    assert key.fingerprint == listed.split()[1]
    event = AuditEvent.objects.get(action=AuditAction.SSH_KEY_ADDED)
    assert event.actor == owner and event.project == project and event.target_repr == "alice@laptop"
    page = client.get(_url(project)).content.decode()
    assert key.fingerprint in page and "Ed25519" in page and "256 bits" in page


def test_a_key_already_in_the_project_is_refused_under_any_name(project, member, client_as, keygen):
    public, _, _ = keygen("-t", "ed25519")
    client = client_as(member)
    assert client.post(_url(project), {"name": "first", "public_key": public}).status_code == 302
    again = client.post(_url(project), {"name": "second", "public_key": public})
    assert again.status_code == 409
    assert "This key is already in the project as “first”" in again.content.decode()
    other, _, _ = keygen("-t", "ed25519")
    same_name = client.post(_url(project), {"name": "first", "public_key": other})
    assert same_name.status_code == 409
    assert "already has a key named “first”" in same_name.content.decode()
    assert SshKey.objects.filter(project=project).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.SSH_KEY_ADDED).count() == 1


def test_the_same_key_may_be_in_two_projects(org, project, owner, client_as, keygen):
    other = ProjectFactory(organization=org, slug="other")
    public, _, _ = keygen("-t", "ed25519")
    client = client_as(owner)
    assert client.post(_url(project), {"public_key": public}).status_code == 302
    assert client.post(_url(other), {"public_key": public}).status_code == 302


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key at all", "not valid base64"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "That is a private key"),
        ("", "Paste a public key"),
        ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "one key on a single line"),
    ],
)
def test_a_bad_key_re_renders_the_form_with_the_reason(project, owner, client_as, key, message):
    response = client_as(owner).post(_url(project), {"name": "x", "public_key": key})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SshKey.objects.exists()


def test_rsa_1024_is_refused_on_the_page(project, owner, client_as, keygen):
    public, _, _ = keygen("-t", "rsa", "-b", "1024")
    response = client_as(owner).post(_url(project), {"public_key": public})
    assert response.status_code == 400
    assert "1024 bits" in response.content.decode()


def test_delete_then_delete_again_is_404(project, member, client_as, keygen):
    public, _, _ = keygen("-t", "ed25519")
    client = client_as(member)
    client.post(_url(project), {"name": "laptop", "public_key": public})
    key = SshKey.objects.get()
    url = _url(project, "compute:ssh_key_delete", key.pk)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert not SshKey.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.SSH_KEY_DELETED, target_repr="laptop").count() == 1
    assert client.post(url).status_code == 404


def test_viewer_sees_keys_without_forms_and_may_not_change_them(project, owner, viewer, client_as, keygen):
    public, _, _ = keygen("-t", "ed25519")
    client_as(owner).post(_url(project), {"name": "laptop", "public_key": public})
    key = SshKey.objects.get()
    client = client_as(viewer)
    page = client.get(_url(project))
    assert page.status_code == 200
    assert key.fingerprint in page.content.decode()
    assert "Add a key" not in page.content.decode() and "Delete key" not in page.content.decode()
    other, _, _ = keygen("-t", "ed25519")
    assert client.post(_url(project), {"name": "mine", "public_key": other}).status_code == 403
    assert client.post(_url(project, "compute:ssh_key_delete", key.pk)).status_code == 403
    assert SshKey.objects.count() == 1


def test_outsider_and_other_projects_keys_are_404(org, project, owner, outsider, client_as, keygen):
    public, _, _ = keygen("-t", "ed25519")
    other = ProjectFactory(organization=org, slug="other")
    client_as(owner).post(_url(other), {"name": "elsewhere", "public_key": public})
    key = SshKey.objects.get(project=other)
    # A key of another project, addressed through this project's URL, is not found.
    assert client_as(owner).post(_url(project, "compute:ssh_key_delete", key.pk)).status_code == 404
    assert client_as(outsider).get(_url(other)).status_code == 404
    assert client_as(outsider).post(_url(other, "compute:ssh_key_delete", key.pk)).status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()
