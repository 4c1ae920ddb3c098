"""The smell test: a cheap LLM judge on sampled live traffic, its verdicts,
the failures kept for review, and the pass-rate alert."""
