"""The residency policies in force at any moment of a period, rebuilt from the audit log.

Every policy change goes through `residency.services.policy_update`, which writes a
POLICY_CHANGED audit event whose `changes` hold each changed field as [old, new] strings: names
sorted and joined with ", " (or "any" / "none" when empty). Starting from today's policies and
undoing the events newest first gives the policy at any earlier time. Names are mapped back to
today's catalog by name; a name the catalog no longer has is reported, and a policy naming it
allows nothing for that field (the conservative reading). Each event is also checked against the
state it should lead to; a mismatch (a change that bypassed the audit log) is reported too.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Certification, Jurisdiction, Region
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import PlacementRules, PolicyRule

FIELDS = ("name", "jurisdictions", "regions", "certifications")
EMPTY = {"jurisdictions": "any", "regions": "any", "certifications": "none"}


def _names(objects, empty: str) -> str:
    # The same text residency.services.policy_update writes into the audit event.
    return ", ".join(sorted(str(o) for o in objects)) or empty


@dataclass(frozen=True)
class PolicyState:
    """One policy's content as the audit log spells it."""

    name: str = ""
    jurisdictions: str = "any"
    regions: str = "any"
    certifications: str = "none"

    @classmethod
    def of(cls, policy: ResidencyPolicy) -> PolicyState:
        return cls(
            name=policy.name,
            jurisdictions=_names(policy.jurisdictions.all(), "any"),
            regions=_names(policy.regions.all(), "any"),
            certifications=_names(policy.certifications.all(), "none"),
        )

    @property
    def restricts(self) -> bool:
        return any(getattr(self, f) != empty for f, empty in EMPTY.items())

    def label(self, scope: str) -> str:
        return f"{scope} policy '{self.name}'" if self.name else f"{scope} policy"

    def summary(self, scope: str) -> str:
        if not self.restricts:
            return f"{self.label(scope)}: no restrictions"
        return (
            f"{self.label(scope)}: jurisdictions {self.jurisdictions}; regions {self.regions}; "
            f"certifications {self.certifications}"
        )


@dataclass(frozen=True)
class PolicyChange:
    at: datetime
    scope: str  # "organization" or "project <name>"
    changes: dict[str, list]

    @property
    def text(self) -> str:
        return "; ".join(f"{f}: {old or '—'} → {new or '—'}" for f, (old, new) in self.changes.items())


@dataclass
class Timeline:
    """One policy's states: `states[i]` holds from `times[i - 1]` (or forever) until `times[i]`."""

    times: list[datetime] = field(default_factory=list)
    states: list[PolicyState] = field(default_factory=lambda: [PolicyState()])

    def at(self, moment: datetime) -> PolicyState:
        return self.states[bisect.bisect_right(self.times, moment)]


class CatalogNames:
    """Today's catalog by name, for the names a past policy was written with."""

    def __init__(self) -> None:
        self.ids: dict[str, dict[str, list[int]]] = {}
        for kind, model in (
            ("jurisdictions", Jurisdiction),
            ("regions", Region),
            ("certifications", Certification),
        ):
            table: dict[str, list[int]] = {}
            for pk, name in model.objects.values_list("pk", "name"):
                table.setdefault(name, []).append(pk)
            self.ids[kind] = table
        self.unknown: set[tuple[str, str]] = set()

    def resolve(self, kind: str, text: str) -> dict:
        """{id: name} for a field's text; a name not in the catalog gets a key no zone matches."""
        if text == EMPTY[kind]:
            return {}
        table = self.ids[kind]
        tokens = text.split(", ")
        found: dict = {}
        i = 0
        while i < len(tokens):
            # A name may itself contain ", ": take the longest run of tokens that is a known name.
            for j in range(len(tokens), i, -1):
                candidate = ", ".join(tokens[i:j])
                if candidate in table:
                    found.update(dict.fromkeys(table[candidate], candidate))
                    i = j
                    break
            else:
                self.unknown.add((kind, tokens[i]))
                found[f"unknown:{tokens[i]}"] = tokens[i]
                i += 1
        return found


@dataclass
class PolicyHistory:
    """Organization policy (key None) and project policies (key project id) over time."""

    timelines: dict[int | None, Timeline]
    changes: list[PolicyChange]
    warnings: list[str]
    catalog: CatalogNames
    _rules: dict = field(default_factory=dict)

    def state_at(self, key: int | None, moment: datetime) -> PolicyState:
        timeline = self.timelines.get(key)
        return timeline.at(moment) if timeline else PolicyState()

    def change_times(self, project_id: int) -> list[datetime]:
        """When the policies that apply to this project changed, oldest first."""
        times = set()
        for key in (None, project_id):
            if key in self.timelines:
                times.update(self.timelines[key].times)
        return sorted(times)

    def rules_at(self, project_id: int, moment: datetime) -> tuple[PlacementRules, str]:
        """The placement rules in force for the project at `moment`, and how they read."""
        org_state = self.state_at(None, moment)
        project_state = self.state_at(project_id, moment)
        cache_key = (org_state, project_state)
        if cache_key not in self._rules:
            rules = PlacementRules(
                (self._rule(org_state, "organization"), self._rule(project_state, "project"))
            )
            text = f"{_sentence(org_state.summary('organization'))} {_sentence(project_state.summary('project'))}"
            self._rules[cache_key] = (rules, text)
        return self._rules[cache_key]

    def _rule(self, state: PolicyState, scope: str) -> PolicyRule:
        return PolicyRule(
            label=state.label(scope),
            jurisdictions=self.catalog.resolve("jurisdictions", state.jurisdictions),
            regions=self.catalog.resolve("regions", state.regions),
            certifications=self.catalog.resolve("certifications", state.certifications),
        )

    def unknown_name_warnings(self) -> list[str]:
        return [
            f"The policy named {kind[:-1]} '{name}', which today's catalog doesn't have (renamed or "
            "removed since): it was read as matching no zone."
            for kind, name in sorted(self.catalog.unknown)
        ]


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


def policy_history(
    organization, *, start: datetime, end: datetime, project_names: dict[int, str]
) -> PolicyHistory:
    """The policies of `organization` and of the projects in `project_names` during [start, end)."""
    policies = ResidencyPolicy.objects.filter(organization=organization).prefetch_related(
        "jurisdictions", "regions", "certifications"
    )
    key_of: dict[str, int | None] = {}
    state: dict[int | None, PolicyState] = {}
    for policy in policies:
        if policy.project_id is not None and policy.project_id not in project_names:
            continue
        key_of[str(policy.pk)] = policy.project_id
        state[policy.project_id] = PolicyState.of(policy)
    timelines = {key: Timeline(states=[current]) for key, current in state.items()}
    changes: list[PolicyChange] = []
    warnings: list[str] = []
    events = AuditEvent.objects.filter(
        organization=organization,
        action=AuditAction.POLICY_CHANGED,
        target_type=ResidencyPolicy._meta.model_name,
        created_at__gt=start,
    ).order_by("-created_at", "-id")
    for event in events:
        if event.target_id not in key_of:
            continue  # the policy of a project out of scope (or deleted with its project)
        key = key_of[event.target_id]
        scope = "organization" if key is None else f"project {project_names[key]}"
        after = state[key]
        diff = {f: v for f, v in (event.changes or {}).items() if f in FIELDS and isinstance(v, list)}
        for f, (_old, new) in diff.items():
            if (new or "") != getattr(after, f):
                warnings.append(
                    f"The {scope} policy change of {event.created_at:%Y-%m-%d %H:%M:%S} UTC set {f} to "
                    f"'{new}', but the next known state has '{getattr(after, f)}': the policy, or a "
                    "name in the catalog, changed without an audit event. Before that change the "
                    "reconstruction follows the audit log."
                )
        before = dataclasses.replace(after, **{f: old or "" for f, (old, _new) in diff.items()})
        state[key] = before
        timeline = timelines[key]
        timeline.times.insert(0, event.created_at)
        timeline.states.insert(0, before)
        if event.created_at < end:
            changes.append(PolicyChange(at=event.created_at, scope=scope, changes=diff))
    changes.reverse()
    return PolicyHistory(timelines=timelines, changes=changes, warnings=warnings, catalog=CatalogNames())
