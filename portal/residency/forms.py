from django import forms
from django.db.models import Q

from portal.catalog.models import Certification, Jurisdiction, Region, Zone


class DefaultZoneForm(forms.Form):
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True),
        error_messages={"required": "Choose a zone.", "invalid_choice": "Choose one of the zones listed."},
    )


class PolicyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        required=False,
        label="Policy name",
        help_text='Shown with every refusal, e.g. "EU only" or "Health data".',
        widget=forms.TextInput(attrs={"placeholder": "EU only"}),
    )
    jurisdictions = forms.ModelMultipleChoiceField(
        Jurisdiction.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Allowed jurisdictions",
        help_text="Leave all unticked to allow any jurisdiction.",
    )
    regions = forms.ModelMultipleChoiceField(
        Region.objects.filter(is_active=True).select_related("jurisdiction"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Allowed regions (optional)",
        help_text="Tick regions only to narrow further; unticked means every region of the allowed jurisdictions.",
    )
    certifications = forms.ModelMultipleChoiceField(
        Certification.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Required certifications",
        help_text="A region must hold every one of these.",
    )

    def __init__(self, *args, keep_regions=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A region the policy already names stays a choice when it is deactivated: otherwise saving
        # the form unchanged would drop it, and an empty region list means "any" (a wider policy).
        self.fields["regions"].queryset = Region.objects.filter(
            Q(is_active=True) | Q(pk__in=[r.pk for r in keep_regions])
        ).select_related("jurisdiction")

    def apply_errors(self, errors: dict[str, list[str]]) -> None:
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)

    def mark_outside(self, organization_policy) -> None:
        """Label the choices the organization's policy excludes, so nobody has to find out by submitting."""
        if organization_policy is None:
            return
        allowed_j = {j.pk for j in organization_policy.jurisdictions.all()}
        allowed_r = {r.pk for r in organization_policy.regions.all()}

        def jurisdiction_label(jurisdiction) -> str:
            outside = allowed_j and jurisdiction.pk not in allowed_j
            return f"{jurisdiction.name} (not allowed by the organization)" if outside else jurisdiction.name

        def region_label(region) -> str:
            outside = (allowed_j and region.jurisdiction_id not in allowed_j) or (
                allowed_r and region.pk not in allowed_r
            )
            return f"{region.name} (not allowed by the organization)" if outside else region.name

        self.fields["jurisdictions"].label_from_instance = jurisdiction_label
        self.fields["regions"].label_from_instance = region_label
