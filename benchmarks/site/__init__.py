"""A small production-like site for the peer and load benchmarks.

``settings.py`` is configured from the environment (``SITE_*``, set by
``benchmarks/peers.py`` and ``benchmarks/site_load.py``); ``app.py`` holds four
views, each asking Claude one question: ``call`` / ``acall`` through
django-claude, ``sdk`` / ``asdk`` through the bare ``anthropic`` SDK, and the
WSGI and ASGI applications that serve them.
"""
