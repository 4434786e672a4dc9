"""bench/check.py (`make bench-check`): thresholds, summaries, verdicts, on constructed scripts.

The real quick benchmarks take minutes and are not part of `make test`; these
run the checker end to end on small scripts that print what the real ones print.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from bench import check

BENCH = Path(check.HERE)


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("import json, sys\nassert sys.argv[1:] == ['--quick'], sys.argv\n" + body)
    return str(path)


def _thresholds(tmp_path: Path, text: str) -> str:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return str(path)


def test_passing_and_failing_ratios_are_named_with_their_thresholds(tmp_path, capsys):
    # One script prints progress, then an indented summary (as write_summary does); the other one line.
    fast = _script(
        tmp_path,
        "fast.py",
        "print('repeat 1: folded 2.0 ms')\nprint(json.dumps({'b1': {'ratio': 0.8}, 'runs': [1]}, indent=2))\n",
    )
    slow = _script(tmp_path, "slow.py", "print(json.dumps({'ratio': 2.4, 'other': 0.5}))\n")
    thresholds = _thresholds(
        tmp_path,
        f"""
[[benchmark]]
script = "{fast}"
ratio = "b1.ratio"
max = 1.0
source = "folded must not be slower"

[[benchmark]]
script = "{slow}"
ratio = "ratio"
max = 2.0
source = "goal <= 2"

[[benchmark]]
script = "{slow}"
ratio = "other"
min = 0.5
""",
    )
    summary = tmp_path / "summary.md"
    assert check.main(["--thresholds", thresholds, "--summary", str(summary)]) == 1
    out, err = capsys.readouterr()
    assert f"| {fast} | b1.ratio | 0.8 | <= 1 | ok |" in out
    assert f"| {slow} | ratio | 2.4 | <= 2 | **FAIL** |" in out
    assert f"| {slow} | other | 0.5 | >= 0.5 | ok |" in out  # equal to a threshold passes
    assert f"FAIL {slow}: ratio = 2.4, past its threshold <= 2 (goal <= 2)" in err
    assert "bench-check: 2 of 3 ratios within their thresholds, 2 scripts in" in err
    assert f"[1/2] {fast}: ok (b1.ratio 0.8;" in err
    assert "## Benchmark check (quick)" in summary.read_text()

    assert check.main(["--thresholds", thresholds, "--only", fast]) == 0


def test_a_crashed_script_or_a_missing_ratio_fails_with_the_reason(tmp_path, capsys):
    crash = _script(tmp_path, "crash.py", "raise SystemExit('cannot load the model')\n")
    renamed = _script(tmp_path, "renamed.py", "print(json.dumps({'ratio_new_name': 1.0}))\n")
    silent = _script(tmp_path, "silent.py", "print('no summary')\n")
    killed = _script(tmp_path, "killed.py", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    thresholds = _thresholds(
        tmp_path,
        "".join(f'[[benchmark]]\nscript = "{s}"\nratio = "ratio"\nmax = 2\n' for s in (crash, renamed, silent, killed)),
    )
    assert check.main(["--thresholds", thresholds]) == 1
    err = capsys.readouterr().err
    assert f"FAIL {crash}: ratio: exited 1: cannot load the model" in err
    assert f"FAIL {renamed}: ratio: no 'ratio' in the summary (it has: ratio_new_name)" in err
    assert f"FAIL {silent}: ratio: printed no JSON summary" in err
    assert f"FAIL {killed}: ratio: killed by signal 15" in err


def test_a_malformed_threshold_is_refused():
    with pytest.raises(ValueError, match=r"benchmark #1 in thresholds\.toml needs script, ratio and one of max or min"):
        check.load_thresholds('[[benchmark]]\nscript = "a.py"\nratio = "r"\nmax = 1\nmin = 0\n')


def test_quick_sizes_are_defaults_that_the_command_line_overrides():
    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser()
        p.add_argument("--images", type=int, default=1000)
        p.add_argument("--repeats", type=int, default=3)
        return p

    assert vars(check.parse_with_quick(parser(), [], images=40)) == {"images": 1000, "repeats": 3, "quick": False}
    assert vars(check.parse_with_quick(parser(), ["--quick"], images=40, repeats=1))["images"] == 40
    quick = check.parse_with_quick(parser(), ["--quick", "--images", "80"], images=40, repeats=1)
    assert (quick.images, quick.repeats) == (80, 1)


def test_every_stored_threshold_names_a_script_with_a_quick_mode():
    thresholds = check.load_thresholds((BENCH / "thresholds.toml").read_text())
    assert len({t.script for t in thresholds}) >= 4
    for t in thresholds:
        source = (BENCH / t.script).read_text()
        calls = [
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "parse_with_quick"
        ]
        assert calls, f"{t.script} has no --quick (parse_with_quick)"
        assert t.source, f"{t.script}: {t.ratio} says not where its threshold comes from"
    # `make bench` still runs every script that bench-check runs quick.
    makefile = (BENCH.parent / "Makefile").read_text()
    assert all(f"bench/{t.script}" in makefile for t in thresholds)
