"""Seed Anthropic's list prices (USD per million tokens).

The table is ``_seeded_prices``. List prices come from genai-prices since
0009, which removes the rows seeded here that a site left unchanged.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations

from django_claude.migrations._seeded_prices import EFFECTIVE_FROM, PRICES


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    ModelPrice = apps.get_model("django_claude", "ModelPrice")
    for models, (inp, write_5m, write_1h, read, out) in PRICES:
        for model in models:
            ModelPrice.objects.update_or_create(
                model=model,
                effective_from=EFFECTIVE_FROM,
                defaults={
                    "input_per_mtok": Decimal(inp),
                    "cache_write_5m_per_mtok": Decimal(write_5m),
                    "cache_write_1h_per_mtok": Decimal(write_1h),
                    "cache_read_per_mtok": Decimal(read),
                    "output_per_mtok": Decimal(out),
                },
            )


class Migration(migrations.Migration):
    dependencies = [("django_claude", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
