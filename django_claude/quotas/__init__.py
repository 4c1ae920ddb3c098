"""Quotas that stop spending: per user, tenant or site, in USD, tokens or calls.

``DJANGO_CLAUDE_QUOTAS`` says what may be spent (``config``); before a call
is sent its worst case is reserved against every quota that applies, in the
shared cache, atomically across processes (``enforce``, ``counters``), and
settled to what it used when it ends. ``django_claude.quota_status``
(``status``) tells a view what a user has left.
"""
