from django.db import migrations, models


def drop_second_copies(apps, schema_editor):
    """Rules added twice before the service refused it are the same rule twice: keep the first of
    each (its description), so that the constraints below can be created."""
    FirewallRule = apps.get_model("compute", "FirewallRule")
    seen = set()
    copies = []
    rules = FirewallRule.objects.order_by("pk").values_list(
        "pk", "rule_set_id", "protocol", "port_from", "port_to", "source"
    )
    for pk, *key in rules.iterator():
        key = tuple(key)
        if key in seen:
            copies.append(pk)
        seen.add(key)
    FirewallRule.objects.filter(pk__in=copies).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0004_simulated_key_not_unique"),
    ]

    operations = [
        migrations.RunPython(drop_second_copies, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="firewallrule",
            constraint=models.UniqueConstraint(
                condition=models.Q(("protocol", "icmp"), _negated=True),
                fields=("rule_set", "protocol", "port_from", "port_to", "source"),
                name="firewall_rule_unique_ports",
            ),
        ),
        migrations.AddConstraint(
            model_name="firewallrule",
            constraint=models.UniqueConstraint(
                condition=models.Q(("protocol", "icmp")),
                fields=("rule_set", "protocol", "source"),
                name="firewall_rule_unique_icmp",
            ),
        ),
    ]
