"""`make audit`: pip-audit over the lock; fails on known vulnerabilities that have a fixed version.

Runs pip-audit (`--no-deps --disable-pip`: the lock is already fully pinned,
so nothing is resolved or installed) with JSON output and reads its report
(`dependencies: [{name, version, vulns: [{id, fix_versions, aliases}]} or
{name, skip_reason}]`, pip_audit/_format/json.py in pip-audit 2.10). Then:

- a vulnerability with a fixed version fails the audit (exit 1), naming the
  package, its locked version, the advisory and the versions that fix it;
- one with no fix yet is listed but does not fail: there is nothing to
  upgrade to;
- packages pip-audit could not audit are counted and named. When it could
  audit none (the vulnerability service is unreachable, as on machines
  without pypi.org's JSON API or OSV), the audit fails with exit 2 and says
  so: a clean result would be a lie.

Usage: python tools/audit.py [-r requirements/lock.txt] [--extra tfx==1.16.0] [-- pip-audit options]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

EXIT_VULNERABLE = 1
EXIT_UNAUDITED = 2


@dataclasses.dataclass(frozen=True)
class Vulnerability:
    """One advisory against one locked package."""

    package: str
    version: str
    id: str
    fix_versions: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    def __str__(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "no fixed version yet"
        return f"{self.package} {self.version}: {self.id}{also}, {fix}"


@dataclasses.dataclass(frozen=True)
class Audit:
    """What pip-audit's report says, sorted for the verdict."""

    audited: int
    fixable: list[Vulnerability]
    unfixed: list[Vulnerability]
    skipped: dict[str, str]

    @property
    def exit_code(self) -> int:
        """1 for a fixable vulnerability, else 2 when nothing could be audited, else 0."""
        if self.fixable:
            return EXIT_VULNERABLE
        if self.audited == 0:
            return EXIT_UNAUDITED
        return 0


def read_report(report: dict[str, Any]) -> Audit:
    """Sorts pip-audit's JSON report into fixable, unfixed and skipped.

    Raises:
        ValueError: the report is not pip-audit's JSON format.
    """
    dependencies = report.get("dependencies") if isinstance(report, dict) else None
    if not isinstance(dependencies, list):
        raise ValueError("not a pip-audit JSON report (no `dependencies` list): run pip-audit with --format json")
    fixable: list[Vulnerability] = []
    unfixed: list[Vulnerability] = []
    skipped: dict[str, str] = {}
    audited = 0
    for dep in dependencies:
        if "skip_reason" in dep:
            skipped[str(dep["name"])] = str(dep["skip_reason"])
            continue
        audited += 1
        for v in dep.get("vulns", []):
            vuln = Vulnerability(
                str(dep["name"]),
                str(dep["version"]),
                str(v["id"]),
                tuple(str(f) for f in v.get("fix_versions", [])),
                tuple(str(a) for a in v.get("aliases", [])),
            )
            (fixable if vuln.fix_versions else unfixed).append(vuln)
    return Audit(audited, fixable, unfixed, skipped)


def summary(audit: Audit, service: str) -> str:
    """The lines `make audit` prints: findings first, then one verdict line."""
    lines = [f"FIXABLE  {v}" for v in audit.fixable] + [f"no fix   {v}" for v in audit.unfixed]
    if audit.skipped:
        names = sorted(audit.skipped)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        lines.append(f"not audited: {len(names)} package(s): {shown} ({audit.skipped[names[0]]})")
    if audit.exit_code == EXIT_UNAUDITED:
        lines.append(
            f"error: pip-audit could audit none of the {len(audit.skipped)} packages: the vulnerability service "
            f"({service}) is unreachable from here or knows none of them. Run `make audit` where pypi.org's JSON "
            "API or api.osv.dev answers (the scheduled workflow does), or pass `-- --vulnerability-service osv`."
        )
    else:
        lines.append(
            f"audit: {audit.audited} package(s) audited, {len(audit.fixable)} vulnerability(ies) with a fix "
            f"(these fail the audit: upgrade them in requirements/requirements.in and `make lock`), "
            f"{len(audit.unfixed)} without a fix yet, {len(audit.skipped)} not audited"
        )
    return "\n".join(lines)


def run_pip_audit(requirements: list[str], extra: list[str], options: list[str]) -> dict[str, Any]:
    """pip-audit's JSON report over the requirement files plus `extra` pins.

    Raises:
        RuntimeError: pip-audit failed without a report (its error is in the message).
    """
    pip_audit = Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as tmp:
        files = list(requirements)
        if extra:
            extra_file = os.path.join(tmp, "extra.txt")
            Path(extra_file).write_text("\n".join(extra) + "\n", encoding="utf-8")
            files.append(extra_file)
        out = os.path.join(tmp, "report.json")
        args = [str(pip_audit), "--no-deps", "--disable-pip", "--format", "json", "--progress-spinner", "off"]
        args += [a for f in files for a in ("-r", f)] + ["-o", out, *options]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        # pip-audit exits 1 when it finds vulnerabilities; the report is there either way.
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            # Its last line is the exception (a traceback's earlier lines say nothing a user can act on).
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"pip-audit failed (exit {proc.returncode}): {last[:600]}")
        return dict(json.loads(Path(out).read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    """Runs the audit and prints the summary; the exit code is the verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--requirement", action="append", help="pinned requirements [default: the lock]")
    parser.add_argument("--extra", action="append", default=[], help="one more pin, e.g. tfx==1.16.0")
    parser.add_argument("pip_audit_options", nargs="*", help="after `--`: passed to pip-audit")
    args = parser.parse_args(argv)
    requirements = args.requirement or ["requirements/lock.txt"]
    options = list(args.pip_audit_options)
    service = "OSV" if "osv" in options else "PyPI's JSON API"
    print(f"pip-audit over {', '.join(requirements)} (+{len(args.extra)} pins) with {service} ...", file=sys.stderr)
    try:
        audit = read_report(run_pip_audit(requirements, args.extra, options))
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        if "onnect" in str(e):
            print(f"error: the vulnerability service ({service}) is unreachable from here", file=sys.stderr)
        return EXIT_UNAUDITED
    print(summary(audit, service))
    return audit.exit_code


if __name__ == "__main__":
    sys.exit(main())
