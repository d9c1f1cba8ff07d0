"""Kept fragments (portal.core.fragments): when a write retires them, and the includes kept by
their values."""

from __future__ import annotations

from unittest import mock

import pytest
from django.template import engines

from portal.core import fragments
from portal.core.context_processors import NavOrganization


@pytest.fixture
def kept():
    builds = []

    def get(scopes=("s",), parts=()):
        return fragments.cached("test", list(scopes), list(parts), lambda: builds.append(1) or len(builds))

    return get


def test_kept_until_a_write_to_its_scope(db, kept):
    assert kept() == 1
    assert kept() == 1
    fragments.changed("another-scope")
    assert kept() == 1
    fragments.changed("s")
    assert kept() == 2
    assert kept(parts=["page 2"]) == 3


def test_a_page_built_between_a_write_and_its_commit_is_retired_by_the_commit(
    db, kept, django_capture_on_commit_callbacks
):
    assert kept() == 1
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        fragments.changed("s")
        assert kept() == 2  # this transaction's own reads see the write at once
        assert kept() == 2  # as another request would keep it, from the rows before the commit
    assert len(callbacks) == 1
    assert kept() == 3


def test_an_evicted_version_only_costs_a_build(db, kept):
    assert kept() == 1
    fragments.cache.delete_many(fragments._version_keys(["s"]).values())
    assert kept() == 2
    assert kept() == 2


def _render(source: str, **context) -> str:
    return engines["django"].from_string("{% load kept %}" + source).render(context)


def test_a_kept_include_sees_only_its_values_and_each_set_renders_once(db, settings, tmp_path):
    (tmp_path / "kept-test.html").write_text("{% for o in orgs %}{{ o.name }};{% endfor %}{{ secret }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    source = '{% include_kept "kept-test.html" orgs=orgs %}'
    one = (NavOrganization("/o/a/", "Acme <b>", "Owner", True),)
    renamed = (one[0]._replace(name="Acme Labs"),)
    with mock.patch("portal.core.fragments.get_template", wraps=fragments.get_template) as loads:
        assert _render(source, orgs=one, secret="hidden") == "Acme &lt;b&gt;;"  # escaped; no secret
        assert _render(source, orgs=one) == "Acme &lt;b&gt;;"
        assert loads.call_count == 1
        assert _render(source, orgs=renamed) == "Acme Labs;"
        assert loads.call_count == 2


def test_a_kept_include_refuses_values_that_are_not_plain(db, owner):
    with pytest.raises(TypeError, match="plain values"):
        _render('{% include_kept "includes/sidebar.html" frame=frame %}', frame=(owner,))
