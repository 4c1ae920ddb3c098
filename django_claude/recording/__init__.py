"""Recording: a finished call's facts become one redacted, priced JSON log
line and one ``CallRecord``, written outside the caller's transaction.

Nothing here knows how a call was made; the write path hands over facts.
"""
