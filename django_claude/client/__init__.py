"""The write path: validate a request, route it, reuse a stored answer, run
the attempt engine (breaker, per-attempt timeout, hard deadline, retries,
fallback, degraded answer) and hand the facts to ``recording``.

``call``/``acall`` (``calls.py``) and ``stream``/``astream`` (``streams.py``)
are thin drivers of the one sans-IO engine in ``engine.py``.
"""
