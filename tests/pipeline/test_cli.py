import os

import pytest
from click.testing import CliRunner

from pipeline.cli import main

COMMANDS = [[], ["data"], ["data", "synth"], ["run"]]


def _all_commands(group=main, prefix=()):
    yield list(prefix)
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _all_commands(cmd, (*prefix, name))


def test_the_known_commands_are_all_there():
    assert sorted(map(tuple, _all_commands())) == sorted(map(tuple, COMMANDS))


@pytest.mark.parametrize("args", list(_all_commands()), ids=lambda a: " ".join(a) or "detx")
def test_every_command_has_help(args):
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output.splitlines()) > 3


def test_synth_writes_and_reports(tmp_path):
    out = tmp_path / "d"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--images", "3", "--format", "voc"])
    assert result.exit_code == 0, result.output
    assert "Wrote 3 images" in result.output and "as voc to" in result.output
    assert len(os.listdir(out / "Annotations")) == 3


def test_synth_refuses_a_full_directory_with_exit_1(tmp_path):
    (tmp_path / "x").write_text("keep")
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path), "--images", "2"])
    assert result.exit_code == 1
    assert "exists and is not empty" in result.output
    assert os.listdir(tmp_path) == ["x"]


def test_run_rejects_bad_arguments_before_starting(tmp_path):
    result = CliRunner().invoke(main, ["run", "--data", str(tmp_path), "--until", "moon"])
    assert result.exit_code == 2 and "unknown stage 'moon'" in result.output
    result = CliRunner().invoke(main, ["run", "--data", str(tmp_path), "--split", "train"])
    assert result.exit_code == 2 and "expected name=buckets" in result.output
    result = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
