"""Store a feature's smell-test baseline pass rate."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.models import SmellBaseline
from django_claude.smell import baselines

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Compute a feature's smell-test baseline: judge up to --sample prompt/answer "
        'pairs from a JSONL file ({"prompt": ..., "response": ...} per line), or, '
        "without --from-file, take its last --sample recorded verdicts."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--feature", required=True)
        parser.add_argument("--sample", type=int, default=100)
        parser.add_argument("--from-file", dest="from_file", metavar="history.jsonl")

    def handle(
        self, *args: Any, feature: str, sample: int, from_file: str | None, **options: Any
    ) -> None:
        if sample < 1:
            raise CommandError("--sample must be at least 1")
        if from_file:
            pairs = _read_pairs(from_file, limit=sample)
            found = baselines.sample_from_pairs(pairs, progress=self._progress_bar(len(pairs)))
            source = SmellBaseline.Source.FILE
        else:
            found = baselines.sample_from_records(feature, size=sample)
            source = SmellBaseline.Source.RECORDS
        if not found.judged:
            raise CommandError(
                f"no judged calls for {feature!r}: sample some traffic first "
                "(DJANGO_CLAUDE_SMELL_TEST_RATES) or pass --from-file"
            )
        baseline = baselines.save_baseline(feature, found, source=source)
        self.stdout.write(
            self.style.SUCCESS(
                f"baseline for {feature}: {baseline.pass_rate:.1f}% of {found.judged} judged"
                + (
                    f" ({found.undecided} the judge could not decide, left out)"
                    if found.undecided
                    else ""
                )
            )
        )

    def _progress_bar(self, total: int) -> Callable[[int], None] | None:
        """A bar on a terminal; nothing otherwise."""
        if not self.stdout.isatty():
            return None

        def show(done: int) -> None:
            filled = BAR_WIDTH * done // total
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stdout.write(f"\r[{bar}] {done}/{total}", ending="\n" if done == total else "")
            self.stdout.flush()

        return show


def _read_pairs(path: str, *, limit: int) -> list[tuple[str, str]]:
    """The first ``limit`` (prompt, response) pairs of a JSONL file."""
    pairs: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                    pairs.append((str(item["prompt"]), str(item["response"])))
                except (ValueError, KeyError, TypeError):
                    raise CommandError(
                        f'{path}:{number}: expected {{"prompt": ..., "response": ...}}'
                    ) from None
                if len(pairs) >= limit:
                    break
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}") from None
    return pairs
