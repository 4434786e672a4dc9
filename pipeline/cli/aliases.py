"""Old spellings of commands that moved into a group: hidden names that run the very same command.

`detx compile` became `detx kfp compile`, `detx approve` became `detx models approve`, and so on
(issue 30). Scripts, cron jobs and muscle memory keep working: each old name is a hidden command
that shares the new one's callback, parameters and help, so there is one implementation and the
old name stays out of `detx --help`. `detx models [--card VERSION]`, the one old spelling that is
not a command of its own, is read by the `models` group itself (cli/models.py).
"""

from __future__ import annotations

import click


def hidden_alias(target: click.Command, name: str) -> click.Command:
    """`target` under an old `name`, left out of `--help`.

    Args:
        target: The command as it is now spelled (a leaf command, not a group).
        name: The name it had before.

    Returns:
        A hidden command with `target`'s callback, parameter objects and help: a second name,
        not a copy of the implementation.
    """
    return click.Command(
        name,
        context_settings=target.context_settings,
        callback=target.callback,
        # The same Parameter objects, in a list of the alias' own: click appends its help option
        # to a command's list (and pops it again) when it builds it.
        params=list(target.params),
        help=target.help,
        epilog=target.epilog,
        short_help=target.short_help,
        options_metavar=target.options_metavar,
        add_help_option=target.add_help_option,
        no_args_is_help=target.no_args_is_help,
        hidden=True,
    )
