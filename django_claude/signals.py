"""Signals django-claude sends, for sites to connect receivers to."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a route change commits: feature (str), old and new
# (django_claude.routing.Route), user (or None), is_rollback (bool),
# is_removal (bool: the feature's own route was removed; new is the route
# now in force).
model_route_changed = Signal()

# Sent once per feature, day and threshold when a feature's cost for the day
# crosses a share of its DJANGO_CLAUDE_BUDGETS entry: feature, day,
# threshold (80 or 100), cost_usd, budget_usd (Decimals).
budget_exceeded = Signal()

# Sent once per episode when a feature's smell-test pass rate drops under its
# baseline: feature, baseline and recent (percent), judged (sample size).
smell_pass_rate_dropped = Signal()

# Sent once a sampled call's record is written: request_id (uuid.UUID). Its
# prompt and answer wait in DJANGO_CLAUDE_CACHE (recording.sampling.stash_key);
# django-claude's own receiver queues the smell-test judge.
call_sampled = Signal()

# Sent once per day and model that claude_reconcile finds over
# DJANGO_CLAUDE_RECONCILE_TOLERANCE, after its rows are saved: day, model,
# our_cost_usd, their_cost_usd, difference_usd (ours minus theirs; Decimals).
reconciliation_drift = Signal()
