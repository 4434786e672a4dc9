"""Writes docs/cli.md, the CLI reference, from the commands' own `--help` (a test keeps it current).

Run `make cli-reference` (or `python -m detx.pipeline.cli.reference docs/cli.md`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

# A fixed width, so the page does not depend on the terminal it was made in.
WIDTH = 100


def _contexts(command: click.Command, name: str, parent: click.Context | None) -> Iterator[click.Context]:
    # resilient_parsing: a context as `--help` sees it, with no required option or argument checked.
    ctx = command.make_context(name, [], parent=parent, resilient_parsing=True, terminal_width=WIDTH)
    yield ctx
    if isinstance(command, click.Group):
        # As `--help` lists them: hidden commands (old spellings, cli/aliases.py) are not documented.
        for sub in command.list_commands(ctx):
            sub_command = command.commands[sub]
            if not sub_command.hidden:
                yield from _contexts(sub_command, sub, ctx)


def _old_spellings(contexts: list[click.Context]) -> list[str]:
    """One line per hidden command: the old name and the documented command that runs the same callback."""
    documented = {ctx.command.callback: ctx.command_path for ctx in contexts if ctx.command.callback}
    lines = []
    for ctx in contexts:
        if isinstance(ctx.command, click.Group):
            for name, command in sorted(ctx.command.commands.items()):
                if command.hidden and command.callback in documented:
                    lines.append(f"- `{ctx.command_path} {name}`: `{documented[command.callback]}`")
    return lines


def render(main: click.Command) -> str:
    """The reference page: every command's help, as `detx <command> --help` prints it."""
    contexts = list(_contexts(main, "detx", None))
    lines = [
        "# CLI reference",
        "",
        "Generated from `--help` by `make cli-reference` (pipeline/cli/reference.py);",
        "tests/pipeline/test_cli_reference.py fails when it is out of date. Options shared by",
        "several commands are declared once, in pipeline/cli/options.py. The folder or file a",
        "command creates is named by `--out` (`--output` before: still accepted, hidden).",
        "",
        "Old spellings still work, hidden from `--help`: the same commands under the names they",
        "had before they moved into a group, and `detx models [OPTIONS]` (`detx models list`) and",
        "`detx models --card VERSION` (`detx models card VERSION`).",
        "",
        *_old_spellings(contexts),
        "",
    ]
    for ctx in contexts:
        lines += [f"## {ctx.command_path}", "", "```text", ctx.get_help().rstrip(), "```", ""]
    return "\n".join(lines)


def main() -> None:
    """Writes the reference to the file named on the command line."""
    from detx.pipeline.cli import main as detx

    with open(sys.argv[1], "w") as f:
        f.write(render(detx))


if __name__ == "__main__":
    main()
