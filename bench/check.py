"""`make bench-check`: the benchmarks' side-by-side ratios in quick mode, held to bench/thresholds.toml.

    .venv/bin/python bench/check.py [--only SCRIPT] [--summary FILE]

Runs each script named in bench/thresholds.toml once with `--quick` (small
sizes, few repeats, nothing written to bench/out), reads the JSON summary it
prints last, and compares each listed ratio with its threshold (`max`: the
ratio must not exceed it; `min`: must not fall below it). Prints one line per
script as it goes and a markdown table at the end; exits 1 naming every
ratio past its threshold, or every script that failed or printed no such
ratio. A quick run is a smoke alarm, not a measurement: docs/benchmarks.md holds
the full runs, and the thresholds leave room for a busy machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLDS = os.path.join(HERE, "thresholds.toml")


def parse_with_quick(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None, **sizes: Any
) -> argparse.Namespace:
    """Adds `--quick` to a bench script's parser and parses; `--quick` makes `sizes` the defaults.

    Options given on the command line still win over the quick sizes.
    """
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in sizes.items())
    parser.add_argument(
        "--quick", action="store_true", help=f"make bench-check's quick mode ({shown}); writes nothing to bench/out"
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**sizes)
        args = parser.parse_args(argv)
    return args


@dataclasses.dataclass(frozen=True)
class Threshold:
    """One ratio a script must keep: `ratio` is a dotted key into the script's JSON summary."""

    script: str
    ratio: str
    limit: float
    kind: str  # "max" or "min"
    source: str = ""

    def passes(self, value: float) -> bool:
        """Whether the value is on the right side of the limit (equal passes)."""
        return value <= self.limit if self.kind == "max" else value >= self.limit

    def describe(self) -> str:
        """The threshold as `<= 2` or `>= 0.7`."""
        return f"{'<=' if self.kind == 'max' else '>='} {self.limit:g}"


@dataclasses.dataclass(frozen=True)
class Result:
    """A threshold and what the quick run gave (value None: no value, `error` says why)."""

    threshold: Threshold
    value: float | None
    error: str = ""

    @property
    def ok(self) -> bool:
        """A value on the right side of the threshold."""
        return self.value is not None and self.threshold.passes(self.value)

    def failure(self) -> str:
        """What failed, naming the script, the ratio, the value and the threshold."""
        t = self.threshold
        if self.value is None:
            return f"{t.script}: {t.ratio}: {self.error}"
        return f"{t.script}: {t.ratio} = {self.value:.3g}, past its threshold {t.describe()} ({t.source})"


def load_thresholds(text: str) -> list[Threshold]:
    """The `[[benchmark]]` tables of thresholds.toml.

    Raises:
        ValueError: a table lacks script or ratio, or has neither or both of max and min.
    """
    found = []
    for i, table in enumerate(tomllib.loads(text).get("benchmark", [])):
        kinds = [k for k in ("max", "min") if k in table]
        if "script" not in table or "ratio" not in table or len(kinds) != 1:
            raise ValueError(f"benchmark #{i + 1} in thresholds.toml needs script, ratio and one of max or min")
        found.append(
            Threshold(table["script"], table["ratio"], float(table[kinds[0]]), kinds[0], table.get("source", ""))
        )
    return found


def last_json(stdout: str) -> dict[str, Any]:
    """The last JSON object a script printed: one line, or an indented block from a `{` line to a `}` line.

    Raises:
        ValueError: no JSON object in the output.
    """
    lines = stdout.splitlines()
    for end in range(len(lines) - 1, -1, -1):
        line = lines[end]
        candidates = []
        if line.startswith("{"):
            candidates.append(line)
        if line == "}":
            candidates += ["\n".join(lines[start : end + 1]) for start in range(end, -1, -1) if lines[start] == "{"][:1]
        for text in candidates:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("printed no JSON summary")


def lookup(summary: Mapping[str, Any], dotted: str) -> float:
    """`summary["a"]["b"]` for "a.b", as a float.

    Raises:
        KeyError: a part of the key is missing (the message names it and what is there).
    """
    value: Any = summary
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            there = ", ".join(sorted(value)) if isinstance(value, Mapping) else type(value).__name__
            raise KeyError(f"no {part!r} in the summary (it has: {there})")
        value = value[part]
    return float(value)


def judge(thresholds: Sequence[Threshold], summary: Mapping[str, Any] | None, error: str = "") -> list[Result]:
    """One result per threshold of a script, from its summary (None: the run failed with `error`)."""
    results = []
    for t in thresholds:
        if summary is None:
            results.append(Result(t, None, error))
            continue
        try:
            results.append(Result(t, lookup(summary, t.ratio)))
        except (KeyError, TypeError, ValueError) as e:
            results.append(Result(t, None, str(e).strip("\"'")))
    return results


def run_script(script: str, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Runs `bench/<script> --quick`; its summary, or None and why."""
    try:
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, script), "--quick"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout:.0f} s"
    if proc.returncode < 0:  # its last words would be some thread's complaint about being stopped
        return None, f"killed by signal {-proc.returncode}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exited {proc.returncode}: {last[:400]}"
    try:
        return last_json(proc.stdout), ""
    except ValueError as e:
        return None, str(e)


def table(results: Sequence[Result]) -> str:
    """The markdown table of every checked ratio."""
    lines = ["| Benchmark (quick) | Ratio | Value | Threshold | Result |", "|---|---|---|---|---|"]
    for r in results:
        value = "-" if r.value is None else f"{r.value:.3g}"
        verdict = "ok" if r.ok else f"**FAIL**{': ' + r.error if r.error else ''}"
        lines.append(f"| {r.threshold.script} | {r.threshold.ratio} | {value} | {r.threshold.describe()} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the quick benchmarks and judges them; 1 when any ratio fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", default=THRESHOLDS)
    parser.add_argument("--only", action="append", help="check only this script (repeatable)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per script [default: 900]")
    parser.add_argument("--summary", help="also append the table to this file (e.g. $GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    with open(args.thresholds, "rb") as f:
        thresholds = load_thresholds(f.read().decode("utf-8"))
    scripts = list(dict.fromkeys(t.script for t in thresholds if not args.only or t.script in args.only))
    if not scripts:
        print(f"error: no benchmark to check (thresholds: {args.thresholds}, --only {args.only})", file=sys.stderr)
        return 2
    results: list[Result] = []
    start = time.perf_counter()
    for n, script in enumerate(scripts, 1):
        print(f"[{n}/{len(scripts)}] {script} --quick ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        summary, error = run_script(script, args.timeout)
        mine = judge([t for t in thresholds if t.script == script], summary, error)
        results += mine
        verdicts = ", ".join(f"{r.threshold.ratio} {'-' if r.value is None else f'{r.value:.3g}'}" for r in mine)
        state = "ok" if all(r.ok for r in mine) else "FAIL"
        took = time.perf_counter() - began
        print(f"[{n}/{len(scripts)}] {script}: {state} ({verdicts}; {took:.0f} s)", file=sys.stderr)
    text = table(results)
    print(text)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write("## Benchmark check (quick)\n\n" + text)
    failures = [r for r in results if not r.ok]
    for r in failures:
        print(f"FAIL {r.failure()}", file=sys.stderr)
    print(
        f"bench-check: {len(results) - len(failures)} of {len(results)} ratios within their thresholds, "
        f"{len(scripts)} scripts in {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
