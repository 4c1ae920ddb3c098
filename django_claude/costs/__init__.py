"""Costs: daily reports and rollups per feature, budgets, retention.

Reads what ``recording`` wrote; never on a call's path.
"""
