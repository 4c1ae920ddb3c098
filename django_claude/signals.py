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

# Canary rollouts (django_claude.routing), each sent once its change commits,
# with feature (str), canary (django_claude.models.Canary), user (or None)
# and reason (str):
canary_started = Signal()
# ...plus old_percent and new_percent (Decimals).
canary_percent_changed = Signal()
# ...the canary's model is now the route's (model_route_changed is sent too).
canary_promoted = Signal()
# ...plus automatic (bool: the canary guard stopped it) and evidence (a dict:
# the guard's numbers; empty for a stop by a person).
canary_stopped = Signal()
