"""Integrations with other packages, each imported only by a site that uses it."""
