"""Store a feature's smell-test baseline pass rate."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.models import CallRecord, SmellBaseline
from django_claude.smell import judge as evals


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
            passed, judged, errors = self._judge_file(from_file, sample)
            source = SmellBaseline.Source.FILE
        else:
            verdicts = list(
                CallRecord.objects.filter(feature=feature, smell_verdict__in=["pass", "fail"])
                .order_by("-created_at")
                .values_list("smell_verdict", flat=True)[:sample]
            )
            passed, judged, errors = verdicts.count("pass"), len(verdicts), 0
            source = SmellBaseline.Source.RECORDS
        if not judged:
            raise CommandError(
                f"no judged calls for {feature!r}: sample some traffic first "
                "(DJANGO_CLAUDE_SMELL_TEST_RATES) or pass --from-file"
            )
        baseline = SmellBaseline.objects.create(
            feature=feature,
            pass_rate=100.0 * passed / judged,
            sample_size=judged,
            source=source,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"baseline for {feature}: {baseline.pass_rate:.1f}% of {judged} judged"
                + (f" ({errors} the judge could not decide, left out)" if errors else "")
            )
        )

    def _judge_file(self, path: str, sample: int) -> tuple[int, int, int]:
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
                    if len(pairs) >= sample:
                        break
        except FileNotFoundError:
            raise CommandError(f"no such file: {path}") from None
        passed = judged = errors = 0
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        for i, (prompt, response) in enumerate(pairs, start=1):
            verdict, _ = evals.judge(prompt, response)
            if verdict == "error":
                errors += 1
            else:
                judged += 1
                passed += verdict == "pass"
            if tty:
                done = int(30 * i / len(pairs))
                sys.stdout.write(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{len(pairs)}")
                sys.stdout.flush()
        if tty:
            sys.stdout.write("\n")
        return passed, judged, errors
