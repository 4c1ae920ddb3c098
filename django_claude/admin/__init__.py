"""The admin, one module per model family; importing this package registers
every ``ModelAdmin`` with Django's default site.

- ``base``: what the pages share (404s, read-only history, the paginator, links);
- ``records``: call records and the dashboard page (numbers in ``dashboard``,
  SVG in ``charts``);
- ``routes``: the model-route switch, its evidence, rollback and removal;
  ``route_history``: the changes, read-only;
- ``costs``: price overrides, daily rollups, budget alerts, reconciliations;
- ``smell``: smell-test failures, baselines and alerts.

A custom ``AdminSite`` registers the same classes with its own ``register()``:
links and redirects stay on the site that serves the page.
"""

from __future__ import annotations

from django_claude.admin.costs import (
    BudgetAlertAdmin,
    DailyCostAdmin,
    ModelPriceAdmin,
    ReconciliationAdmin,
)
from django_claude.admin.records import CallRecordAdmin
from django_claude.admin.route_history import ModelRouteChangeAdmin
from django_claude.admin.routes import ModelRouteAdmin
from django_claude.admin.smell import SmellAlertAdmin, SmellBaselineAdmin, SmellFailureAdmin

__all__ = [
    "BudgetAlertAdmin",
    "CallRecordAdmin",
    "DailyCostAdmin",
    "ModelPriceAdmin",
    "ModelRouteAdmin",
    "ModelRouteChangeAdmin",
    "ReconciliationAdmin",
    "SmellAlertAdmin",
    "SmellBaselineAdmin",
    "SmellFailureAdmin",
]
