from django import forms

from portal.tenancy.models import Role


def _collapse_spaces(value: str) -> str:
    # Required fields already refuse blank input; this only tidies runs of spaces.
    return " ".join(value.split())


class OrganizationForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Organization name",
        help_text="Usually your company or team. You can rename it later.",
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme Research"}),
    )

    def clean_name(self) -> str:
        return _collapse_spaces(self.cleaned_data["name"])


class ProjectForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Project name",
        help_text="Projects group servers, volumes and their costs, e.g. one per application or environment.",
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Web shop (production)"}),
    )
    description = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Description (optional)",
    )

    def clean_name(self) -> str:
        return _collapse_spaces(self.cleaned_data["name"])


def role_choices(*, allow_owner: bool) -> list[tuple[str, str]]:
    return [(r.value, r.label) for r in Role if allow_owner or r != Role.OWNER]


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"placeholder": "teammate@example.com"}),
    )
    role = forms.ChoiceField(choices=role_choices(allow_owner=True), initial=Role.MEMBER)

    def __init__(self, *args, allow_owner: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(allow_owner=allow_owner)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
