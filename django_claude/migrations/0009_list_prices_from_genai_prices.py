"""List prices now come from genai-prices: drop the rows 0002 seeded.

A seeded row that a site changed since (another rate) is the site's own
price and stays, as does every row the site added. Reversing puts the seed
back.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations

from django_claude.migrations._seeded_prices import EFFECTIVE_FROM, PRICES


def _seeded():  # type: ignore[no-untyped-def]
    for models, (inp, write_5m, write_1h, read, out) in PRICES:
        for model in models:
            yield (
                model,
                {
                    "input_per_mtok": Decimal(inp),
                    "cache_write_5m_per_mtok": Decimal(write_5m),
                    "cache_write_1h_per_mtok": Decimal(write_1h),
                    "cache_read_per_mtok": Decimal(read),
                    "output_per_mtok": Decimal(out),
                },
            )


def drop_unchanged_seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    ModelPrice = apps.get_model("django_claude", "ModelPrice")
    for model, rates in _seeded():
        ModelPrice.objects.filter(model=model, effective_from=EFFECTIVE_FROM, **rates).delete()


def reseed(apps, schema_editor):  # type: ignore[no-untyped-def]
    ModelPrice = apps.get_model("django_claude", "ModelPrice")
    for model, rates in _seeded():
        ModelPrice.objects.get_or_create(model=model, effective_from=EFFECTIVE_FROM, defaults=rates)


class Migration(migrations.Migration):
    dependencies = [("django_claude", "0008_route_removal")]

    operations = [migrations.RunPython(drop_unchanged_seed, reseed)]
