"""A small production-like site for the tests that run real servers and kill
processes: SQLite file from ``SITE_DB``, call lines to ``SITE_CALL_LOG``,
the fake API at ``SITE_API``, records written behind."""
