from django import forms

from portal.accounts.models import User


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["name"]
        labels = {"name": "Your name"}
        help_texts = {"name": "Shown to your teammates and in the audit log."}
