# Tool fees get a column of their own (and a place in the report's covering
# index), so the daily report and the dashboard sum them without reading the
# cost breakdown JSON of every row.

from decimal import Decimal, InvalidOperation

from django.db import migrations, models

import django_claude.indexes


def fill_tool_fees(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Copy ``cost_breakdown["tools"]`` into the new column, for the calls
    that used a server tool (no other call has a tool fee)."""
    CallRecord = apps.get_model("django_claude", "CallRecord")
    records = CallRecord.objects.filter(web_search_requests__gt=0).only("id", "cost_breakdown")
    changed = []
    for record in records.iterator(chunk_size=1000):
        try:
            fee = Decimal(str((record.cost_breakdown or {}).get("tools") or 0))
        except (InvalidOperation, AttributeError):
            continue
        if fee.is_finite() and fee > 0:
            record.tool_cost_usd = fee.quantize(Decimal("1e-10"))
            changed.append(record)
        if len(changed) >= 1000:
            CallRecord.objects.bulk_update(changed, ["tool_cost_usd"])
            changed.clear()
    if changed:
        CallRecord.objects.bulk_update(changed, ["tool_cost_usd"])


class Migration(migrations.Migration):
    dependencies = [
        ("django_claude", "0011_reconciliation"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="callrecord",
            name="dc_call_feature_created",
        ),
        migrations.AddField(
            model_name="callrecord",
            name="tool_cost_usd",
            field=models.DecimalField(
                decimal_places=10,
                default=Decimal("0"),
                max_digits=18,
                verbose_name="tool fees (USD)",
            ),
        ),
        migrations.AddField(
            model_name="dailycost",
            name="tool_cost_usd",
            field=models.DecimalField(
                decimal_places=10, default=0, max_digits=20, verbose_name="tool fees (USD)"
            ),
        ),
        migrations.AddField(
            model_name="dailycost",
            name="web_search_requests",
            field=models.PositiveIntegerField(default=0, verbose_name="web searches"),
        ),
        migrations.RunPython(fill_tool_fees, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="callrecord",
            index=django_claude.indexes.CoveringIndex(
                fields=["feature", "created_at"],
                covering=(
                    "model",
                    "outcome",
                    "cost_usd",
                    "latency_ms",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "web_search_requests",
                    "tool_cost_usd",
                ),
                name="dc_call_feature_created",
            ),
        ),
    ]
