from __future__ import annotations

from itertools import zip_longest

from django import forms
from django.conf import settings

from portal.catalog.models import Flavor, Image, Zone
from portal.compute.models import FirewallRuleSet, SshKey, Volume
from portal.compute.services import NAME_MAX_LENGTH, ROOT_DISK_MAX_GIB, NewVolume
from portal.compute.services.networks import LaunchNetworks, launch_networks_find
from portal.compute.sshkeys import InvalidKey, PrivateKeyPasted, parse_public_key
from portal.lib.ids import as_id


class VolumeRowsWidget(forms.Widget):
    """Rows of `<name>_name` and `<name>_size_gib` inputs, as many as sent (the page adds rows)."""

    def value_from_datadict(self, data, files, name) -> list[tuple[str, str]]:
        getlist = getattr(data, "getlist", None)
        if getlist is None:
            return []
        rows = zip_longest(getlist(f"{name}_name"), getlist(f"{name}_size_gib"), fillvalue="")
        return [(n.strip(), s.strip()) for n, s in rows if n.strip() or s.strip()]


class VolumeRowsField(forms.Field):
    """New volumes, each a name and a size; the rules (bounds, names) are the service's. A size
    that is no whole number cannot be judged there: it is reported here, every row at once."""

    widget = VolumeRowsWidget

    def to_python(self, value) -> list[NewVolume]:
        rows, errors = [], []
        for i, (name, size) in enumerate(value or [], 1):
            if not size.isdigit() or len(size) > 9:
                errors.append(f"New volume {i}: give its size in GiB, a whole number.")
            else:
                rows.append(NewVolume(name=name, size_gib=int(size)))
        if errors:
            raise forms.ValidationError(errors)
        return rows


class IdsWidget(forms.Widget):
    """Checkboxes the template draws itself: the values ticked (or sent), as a list."""

    def value_from_datadict(self, data, files, name) -> list[str]:
        getlist = getattr(data, "getlist", None)
        return [v for v in getlist(name) if v.strip()] if getlist else []


class NetworkIdsField(forms.Field):
    """Private networks chosen by id. Looked up in the form's clean_networks, which never refuses:
    the launch rules judge the networks found, and every id that finds none is a problem of its own
    (services.networks.launch_networks_find), all shown at once."""

    widget = IdsWidget

    def to_python(self, value) -> list[str]:
        return list(value or [])


class LaunchForm(forms.Form):
    """What the wizard sends, parsed. The rules (name, bounds, what the zone offers…) are the
    service's `launch_problems`, which the view applies to whatever parsed: one place for the
    rules and their words, for the wizard and the API alike. The bounds are also the inputs'
    min/max, for the browser's spinners and keyboards."""

    name = forms.CharField(
        help_text="Lower-case letters, digits and hyphens. With more than one server, names get -1, -2, …",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "live-input",
                "maxlength": NAME_MAX_LENGTH,
            }
        ),
    )
    count = forms.IntegerField(
        initial=1,
        label="How many",
        widget=forms.NumberInput(attrs={"class": "live-input", "min": 1}),
    )
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True), error_messages={"required": "Choose a zone."}
    )
    image = forms.ModelChoiceField(
        Image.objects.filter(is_active=True), error_messages={"required": "Choose an image."}
    )
    flavor = forms.ModelChoiceField(
        Flavor.objects.filter(is_active=True), label="Size", error_messages={"required": "Choose a size."}
    )
    root_disk_gib = forms.IntegerField(
        required=False,
        label="Root disk (GiB)",
        help_text="Leave empty for the size's included disk.",
        widget=forms.NumberInput(attrs={"class": "live-input", "min": 1, "max": ROOT_DISK_MAX_GIB}),
    )
    new_volumes = VolumeRowsField(required=False, label="New volumes")
    existing_volumes = forms.ModelMultipleChoiceField(
        Volume.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Existing volumes",
        error_messages={
            "invalid_choice": "Choose volumes of this project.",
            "invalid_pk_value": "Choose volumes of this project.",
        },
    )
    firewall = forms.ChoiceField(required=False, label="Firewall")
    allow_all_inbound = forms.BooleanField(
        required=False,
        label="Yes, allow all inbound traffic: every port of the server is open to the whole internet",
    )
    ssh_keys = forms.ModelMultipleChoiceField(
        SshKey.objects.none(), required=False, widget=forms.CheckboxSelectMultiple, label="SSH keys"
    )
    new_ssh_key = forms.CharField(
        required=False,
        label="Or paste a public key",
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "ssh-ed25519 AAAAC3Nza… you@laptop", "spellcheck": "false"}
        ),
        help_text="It is saved to the project's keys.",
    )
    ssh_key_file = forms.FileField(required=False, label="Or upload a .pub file")
    networks = NetworkIdsField(required=False, label="Private networks")
    user_data = forms.CharField(
        required=False,
        label="User data (cloud-init)",
        widget=forms.Textarea(
            attrs={"rows": 4, "spellcheck": "false", "placeholder": "#cloud-config\npackages:\n  - nginx"}
        ),
    )
    termination_protection = forms.BooleanField(required=False, label="Protect from accidental termination")

    def __init__(self, *args, project, presets: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.presets = presets
        self.private_key_pasted = False
        self.fields["count"].widget.attrs["max"] = settings.COMPUTE_MAX_LAUNCH_COUNT
        self.fields["ssh_keys"].queryset = SshKey.objects.filter(project=project)
        # Any of the project's volumes parses, so that the rules can say why one cannot be used
        # (another zone, attached); another project's is "not a choice", as if it did not exist.
        self.fields["existing_volumes"].queryset = (
            Volume.objects.existing()
            .filter(project=project)
            .select_related("zone", "attached_to", "pending_server")
        )
        # The public catalog and the project's own images; another project's is "not a choice".
        self.fields["image"].queryset = Image.objects.for_project(project)
        rule_sets = FirewallRuleSet.objects.filter(project=project)
        self.fields["firewall"].choices = [
            ("", "None: all inbound traffic allowed"),
            *((f"set:{rs.pk}", f"Rule set: {rs.name}") for rs in rule_sets),
            *((f"preset:{p.key}", f"Preset: {p.label}") for p in presets.values()),
        ]

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean(self):
        """No firewall (all inbound traffic allowed) only when asked for in so many words."""
        cleaned = super().clean()
        if "firewall" in cleaned and cleaned["firewall"] is None and not cleaned.get("allow_all_inbound"):
            self.add_error(
                "allow_all_inbound",
                "Without a firewall every port of the server is open to the whole internet: tick the box "
                "to confirm, or choose a firewall.",
            )
        return cleaned

    def clean_new_ssh_key(self):
        text = self.cleaned_data["new_ssh_key"].strip()
        if not text:
            return None
        try:
            return parse_public_key(text)
        except PrivateKeyPasted as error:
            # Not even back to its owner's page: the answer could be cached, logged or shared.
            self.data = self.data.copy()
            self.data["new_ssh_key"] = ""
            self.private_key_pasted = True
            raise forms.ValidationError(str(error)) from None
        except InvalidKey as error:
            raise forms.ValidationError(str(error)) from None

    def clean_ssh_key_file(self):
        upload = self.cleaned_data.get("ssh_key_file")
        if not upload:
            return None
        if upload.size > 16 * 1024:
            raise forms.ValidationError("That file is too large to be a public key.")
        try:
            return parse_public_key(upload.read().decode("utf-8"))
        except UnicodeDecodeError:
            raise forms.ValidationError("That file is not a text public key.") from None
        except InvalidKey as error:
            raise forms.ValidationError(str(error)) from None

    def clean_networks(self) -> LaunchNetworks:
        return launch_networks_find(self.project, self.cleaned_data["networks"])

    def clean_firewall(self):
        value = self.cleaned_data["firewall"]
        if not value:
            return None
        kind, _, key = value.partition(":")
        if kind == "set" and as_id(key) is not None:
            rule_set = FirewallRuleSet.objects.filter(project=self.project, pk=as_id(key)).first()
            if rule_set:
                return rule_set
        if kind == "preset" and key in self.presets:
            return self.presets[key]
        raise forms.ValidationError("Choose one of the firewalls listed.")
