"""`{% include_kept "template" name=value … %}`: an include rendered once per set of values."""

from __future__ import annotations

from django import template

from portal.core.fragments import render_kept

register = template.Library()


@register.simple_tag
def include_kept(template_name: str, **values) -> str:
    """`template_name` rendered with `values` and nothing else (no request, no context processors),
    kept in this process under those values: the page frame on every page for the price of a
    dictionary lookup. The values must be plain (see `render_kept`)."""
    return render_kept(template_name, values)
