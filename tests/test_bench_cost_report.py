"""The cost report benchmark loads rows with raw SQL: it must fill every
column the database requires, or it breaks only when someone runs it."""

from __future__ import annotations

import re
from pathlib import Path

from django.db.models.fields import NOT_PROVIDED

from django_claude.models import CallRecord

LOAD = (Path(__file__).parent.parent / "benchmarks" / "cost_report.py").read_text()


def test_the_benchmark_fills_every_required_column():
    listed = re.search(r"INSERT INTO django_claude_callrecord \(([^)]*)\)", LOAD)
    assert listed is not None
    columns = {name.strip() for name in listed.group(1).split(",")}
    required = {
        field.column
        for field in CallRecord._meta.concrete_fields
        if not field.null and field.db_default is NOT_PROVIDED
    }
    assert required - columns == set()
    insert = LOAD[listed.end() :]
    values = re.search(r"SELECT (.*?)\nFROM generate_series", insert, re.S)
    assert values is not None
    # As many values as columns: commas outside parentheses and CASE ... END.
    text = re.sub(r"CASE .*? END", "x", values.group(1), flags=re.S)
    depth, count = 0, 1
    for char in re.sub(r"'[^']*'", "''", text):
        depth += char == "("
        depth -= char == ")"
        count += char == "," and depth == 0
    assert count == len(columns)
