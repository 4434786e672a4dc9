"""docs/ml_test_score.md stays true: every test, file and command it cites exists, and its sums add up."""

from __future__ import annotations

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "ml_test_score.md")
SECTIONS = ("Data", "Model", "Infrastructure", "Monitoring")


def _read() -> str:
    with open(DOC) as f:
        return f.read()


def _rows(text: str, section: str) -> list[list[str]]:
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split(" | ") for line in body.splitlines() if re.match(r"\| \d ", line)]
    return [[cell.strip() for cell in row] for row in rows]


@pytest.mark.parametrize("section", SECTIONS)
def test_each_section_has_its_seven_tests_scores_its_sum_and_at_least_five(section):
    text = _read()
    rows = _rows(text, section)
    assert [int(r[0]) for r in rows] == list(range(1, 8))
    points = [float(r[2]) for r in rows]
    assert all(p in (0.0, 0.5, 1.0) for p in points)
    summary = re.search(rf"^\| {section} \| \*\*([\d.]+)\*\* \|$", text, re.M)
    assert summary is not None and float(summary.group(1)) == sum(points)
    assert sum(points) >= 5


def test_the_final_score_is_the_minimum_over_sections():
    text = _read()
    sums = [sum(float(r[2]) for r in _rows(text, s)) for s in SECTIONS]
    final = re.search(r"^\| \*\*Final \(minimum\)\*\* \| \*\*([\d.]+)\*\* \|$", text, re.M)
    assert final is not None and float(final.group(1)) == min(sums)


def _functions(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_cited_path_and_test_exists():
    text = _read()
    cited = re.findall(r"`((?:tests|components|bench|pipeline|serving|kfp_manifests|\.github)/[^`\s]*)`", text)
    assert len(cited) > 30
    for ref in cited:
        path, _, name = ref.partition("::")
        assert os.path.exists(os.path.join(ROOT, path)), f"docs/ml_test_score.md cites {path}, which does not exist"
        if name:
            assert name in _functions(os.path.join(ROOT, path)), f"{path} has no test {name}"
    files = {ref.partition("::")[0] for ref in cited if ref.partition("::")[0].endswith(".py")}
    # `::name` right after a cited file refers to that file.
    for name in re.findall(r"`::(test_\w+)`", text):
        assert any(name in _functions(os.path.join(ROOT, f)) for f in files), f"no cited test file has {name}"
