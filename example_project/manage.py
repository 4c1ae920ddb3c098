#!/usr/bin/env python
"""The example site's manage.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.core.management import execute_from_command_line
    from example.otel import configure

    configure()  # traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set

    execute_from_command_line(sys.argv)
