"""Costs: what recorded calls cost, per day, and what to do about it.

- ``days``: days in the site's time zone, and their bounds;
- ``totals``: one group's totals, aggregated by the database or added up from log lines;
- ``reports``: the cost report per feature, model or user;
- ``rollups``: the DailyCost rows per day, feature and model;
- ``repricing``: price calls recorded unpriced once their model has a price;
- ``budgets``: daily budget alerts; ``retention``: purge old records.

Reads what ``recording`` wrote; never on a call's path.
"""
