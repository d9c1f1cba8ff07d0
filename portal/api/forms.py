from __future__ import annotations

from django import forms

from portal.api.models import TokenScope
from portal.api.services import lifetime_choices
from portal.tenancy.models import Project


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        error_messages={"required": "Give the token a name, e.g. the program that will use it."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "autoscaler"}),
    )
    project = forms.ModelChoiceField(
        Project.objects.none(),
        required=False,
        empty_label="All projects of the organization",
        help_text="A token bound to one project sees nothing else.",
    )
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.READ,
        widget=forms.RadioSelect,
        help_text="Read and write may launch, change and delete servers, volumes, keys and firewalls.",
    )
    billing = forms.BooleanField(
        required=False,
        label="Billing: usage costs and budgets",
        help_text="Without it the token sees usage in hours, not money.",
    )
    days = forms.TypedChoiceField(coerce=int, label="Expires after", widget=forms.RadioSelect)

    def __init__(self, *args, organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = organization.projects.order_by("name")
        choices = lifetime_choices()
        self.fields["days"].choices = [(d, f"{d} days") for d in choices]
        self.fields["days"].initial = choices[-1] if 30 not in choices else 30
