"""The release step the README gives, `collectstatic`, with the storage production uses (DEBUG off:
whitenoise's compressed manifest): it fails on a file that references one that is not shipped,
such as a vendored script's source map."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.fixture
def manifest_storage(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
    }
    return settings.STATIC_ROOT


def test_collectstatic_for_production(manifest_storage):
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (manifest_storage / "staticfiles.json").exists()
    assert list(manifest_storage.glob("vendor/xterm/xterm.*.js"))
    assert list(manifest_storage.glob("vendor/novnc/**/*.js"))
