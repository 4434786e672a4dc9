"""`make drift`'s report: what a re-resolved lock changes against requirements/lock.txt, as markdown.

Reads two `uv pip compile` locks (`name==version` lines; comments, `# via`
lines and options are ignored; names compared in PEP 503 normal form) and
writes one table: each package that was upgraded (major, minor or patch by
the release segments), downgraded, added or removed, with the test suite's
outcome on the new versions above it. The scheduled workflow appends it to
the job summary.

Usage: python tools/drift_report.py OLD_LOCK NEW_LOCK [--tests-exit N] [--output report.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# Sort order of the table: what most needs a look first.
_KINDS = ("major", "minor", "patch", "other", "downgrade", "added", "removed")


@dataclasses.dataclass(frozen=True)
class Change:
    """One package whose pin differs between the two locks."""

    name: str
    old: str | None
    new: str | None
    kind: str


def read_lock(text: str) -> dict[str, str]:
    """Pins of a lock, by normalized name.

    Raises:
        ValueError: a name is pinned twice to different versions.
    """
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if not match:
            continue
        name, version = canonicalize_name(match.group(1)), match.group(2)
        if pins.get(name, version) != version:
            raise ValueError(f"{name} is pinned twice ({pins[name]} and {version}): not a compiled lock")
        pins[name] = version
    return pins


def _kind(old: str, new: str) -> str:
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return "other"
    if b < a:
        return "downgrade"
    for index, kind in enumerate(("major", "minor")):
        if a.release[index : index + 1] != b.release[index : index + 1]:
            return kind
    return "patch" if a.release != b.release else "other"


def changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """Every package whose pin differs, most consequential first, then by name."""
    found = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if before is None:
            found.append(Change(name, None, after, "added"))
        elif after is None:
            found.append(Change(name, before, None, "removed"))
        else:
            found.append(Change(name, before, after, _kind(before, after)))
    return sorted(found, key=lambda c: (_KINDS.index(c.kind), c.name))


def report(found: list[Change], total_new: int, tests_exit: int | None) -> str:
    """The markdown report."""
    counts = {k: sum(c.kind == k for c in found) for k in _KINDS}
    lines = ["## Dependency drift", ""]
    if tests_exit is None:
        lines.append("Test suite on the new versions: not run.")
    elif tests_exit == 0:
        lines.append("Test suite on the new versions: **passed**.")
    else:
        lines.append(f"Test suite on the new versions: **failed** (pytest exit {tests_exit}); see the job log.")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing"
    lines += ["", f"{len(found)} of {total_new} pins changed: {summary}.", ""]
    if found:
        lines += ["| Package | Locked | Newest allowed | Change |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {c.old or '-'} | {c.new or '-'} | {c.kind} |" for c in found]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Writes the report (atomically, when --output is given) and prints a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old_lock")
    parser.add_argument("new_lock")
    parser.add_argument("--tests-exit", type=int, default=None, help="pytest's exit status on the new versions")
    parser.add_argument("--output", help="write the markdown here [default: stdout]")
    args = parser.parse_args(argv)
    try:
        old = read_lock(Path(args.old_lock).read_text(encoding="utf-8"))
        new = read_lock(Path(args.new_lock).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not old or not new:
        empty = args.old_lock if not old else args.new_lock
        print(f"error: {empty} has no `name==version` pins: give two compiled locks", file=sys.stderr)
        return 2
    found = changes(old, new)
    text = report(found, len(new), args.tests_exit)
    if args.output:
        tmp = f"{args.output}.tmp"
        Path(tmp).write_text(text, encoding="utf-8")
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text)
    print(f"drift: {len(found)} of {len(new)} pins changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
