"""Every `detx ...` command in README.md and docs/ parses with the real CLI, as written.

Paths are not checked for existence (the commands name a user's files, or files
`make demo` creates); everything else is: command names, flags, choices, ranges,
required options and arguments.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from detx.pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _commands(path: Path) -> list[str]:
    out = []
    for lang, body in _FENCE.findall(path.read_text()):
        if lang not in ("sh", "bash", "console", "shell"):
            continue
        joined = re.sub(r"\\\n\s*", " ", body)
        for raw in joined.splitlines():
            line = re.sub(r"^(\S+/)?(\.venv/bin/)?detx ", "detx ", raw.strip().removeprefix("$ "))
            if line.startswith("detx "):
                out.append(line)
    return out


CASES = [(p.relative_to(REPO).as_posix(), c) for p in DOCS for c in _commands(p)]


def test_the_docs_have_commands_to_check():
    assert len(CASES) > 30
    assert {c.split()[1] for _, c in CASES} >= {"run", "serve", "predict", "models", "data", "ct", "submit"}


@pytest.mark.parametrize(("doc", "command"), CASES, ids=[f"{d}: {c[:60]}" for d, c in CASES])
def test_a_documented_command_parses(doc: str, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(click.Path, "convert", lambda self, value, param, ctx: value)
    args = shlex.split(command, comments=True)[1:]
    command_obj: click.Command = main
    parent = main.make_context("detx", [], resilient_parsing=True)
    while isinstance(command_obj, click.Group) and args and args[0] in command_obj.commands:
        name, args = args[0], args[1:]
        command_obj = command_obj.commands[name]
        if isinstance(command_obj, click.Group):
            parent = command_obj.make_context(name, [], parent=parent, resilient_parsing=True)
    assert not isinstance(command_obj, click.Group), f"{doc}: {command!r} names no command"
    try:
        command_obj.make_context(command_obj.name, list(args), parent=parent)
    except click.exceptions.Exit:
        pass  # --help
    except click.UsageError as e:
        pytest.fail(f"{doc}: {command!r} does not parse: {e.format_message()}")
