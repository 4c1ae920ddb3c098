"""Store a feature's smell-test baseline pass rate."""

from __future__ import annotations

import json
import re
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.models import SmellBaseline
from django_claude.smell import baselines

BAR_WIDTH = 30
MAX_SAMPLE = 100_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _check_feature(feature: str) -> None:
    """Raise ``CommandError`` for a feature name no call can have."""
    max_length = SmellBaseline._meta.get_field("feature").max_length or 0
    if not feature.strip():
        raise CommandError("--feature: empty")
    if _CONTROL.search(feature):
        raise CommandError("--feature: contains a control character")
    if len(feature) > max_length:
        raise CommandError(f"--feature: {len(feature)} characters, at most {max_length}")
    try:
        feature.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("--feature: not valid Unicode") from None


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
        if not 1 <= sample <= MAX_SAMPLE:
            raise CommandError(f"--sample must be between 1 and {MAX_SAMPLE}")
        _check_feature(feature)
        if from_file is not None:
            pairs = _read_pairs(from_file, limit=sample)
            if not pairs:
                raise CommandError(f"--from-file: {from_file} holds no prompt/response pairs")
            found = baselines.sample_from_pairs(pairs, progress=self._progress_bar(len(pairs)))
            source = SmellBaseline.Source.FILE
        else:
            found = baselines.sample_from_records(feature, size=sample)
            source = SmellBaseline.Source.RECORDS
        if not found.judged and from_file is not None:
            raise CommandError(
                f"--from-file: the judge could not decide any of the {found.undecided} pairs"
            )
        if not found.judged:
            raise CommandError(
                f"--feature: no judged calls for {feature!r}: sample some traffic first "
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
    """The first ``limit`` (prompt, response) pairs of a JSONL file; raises
    ``CommandError`` for a file that cannot be read or a line that is not a pair."""
    pairs: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                    pairs.append((str(item["prompt"]), str(item["response"])))
                except (ValueError, KeyError, TypeError, RecursionError):
                    raise CommandError(
                        f'--from-file: {path}:{number}: expected {{"prompt": ..., "response": ...}}'
                    ) from None
                if len(pairs) >= limit:
                    break
    except FileNotFoundError:
        raise CommandError(f"--from-file: no such file: {path}") from None
    except IsADirectoryError:
        raise CommandError(f"--from-file: {path} is a directory") from None
    except UnicodeDecodeError:
        raise CommandError(f"--from-file: {path}: not UTF-8 text") from None
    except OSError as exc:
        raise CommandError(f"--from-file: {path}: {exc.strerror or exc}") from None
    return pairs
