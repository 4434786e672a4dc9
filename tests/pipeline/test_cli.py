import os

import click
import pytest
from click.testing import CliRunner

from detx.components.model_store import ModelStore
from detx.pipeline.cli import main

COMMANDS = [
    [],
    ["data"],
    ["data", "synth"],
    ["data", "add-span"],
    ["ct"],
    ["ct", "check"],
    ["ct", "run"],
    ["run"],
    ["models"],
    ["models", "list"],
    ["models", "card"],
    ["models", "approve"],
    ["models", "reject"],
    ["models", "rollback"],
    ["rollout"],
    ["rollout", "start"],
    ["rollout", "status"],
    ["rollout", "promote"],
    ["rollout", "abort"],
    ["export"],
    ["export", "tflite"],
    ["serve"],
    ["predict"],
    ["infer"],
    ["kfp"],
    ["kfp", "compile"],
    ["kfp", "submit"],
    ["kfp", "upload"],
    ["kfp", "schedule"],
    ["kfp", "runs"],
    ["web"],
    ["review"],
    ["review", "prelabel"],
    ["review", "queue"],
]
# The top-level spellings before issue 30 grouped them: hidden, the same commands as their new spelling.
OLD_SPELLINGS = {
    "compile": ["kfp", "compile"],
    "upload": ["kfp", "upload"],
    "submit": ["kfp", "submit"],
    "schedule": ["kfp", "schedule"],
    "runs": ["kfp", "runs"],
    "approve": ["models", "approve"],
    "reject": ["models", "reject"],
    "rollback": ["models", "rollback"],
}


def _all_commands(group=main, prefix=()):
    """Every command `--help` shows, as its path under `detx` (hidden aliases left out)."""
    yield list(prefix)
    for name, cmd in getattr(group, "commands", {}).items():
        if not cmd.hidden:
            yield from _all_commands(cmd, (*prefix, name))


def _command(path):
    command = main
    for name in path:
        command = command.commands[name]
    return command


def test_the_known_commands_are_all_there():
    assert sorted(map(tuple, _all_commands())) == sorted(map(tuple, COMMANDS))
    assert {name for name, cmd in main.commands.items() if cmd.hidden} == set(OLD_SPELLINGS)


@pytest.mark.parametrize(
    "args", [*_all_commands(), *([old] for old in OLD_SPELLINGS)], ids=lambda a: " ".join(a) or "detx"
)
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


def test_config_file_errors_name_the_key_and_exit_2(tmp_path):
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("data: {path: .}\nevaluator: {min_map50: 0.5}\n")
    result = CliRunner().invoke(main, ["run", "--config", str(bad_key)])
    assert result.exit_code == 2 and "unknown key(s) min_map50 in section 'evaluator'" in result.output
    assert "min_map_50" in result.output  # the valid keys are listed
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("data: [unclosed\n")
    result = CliRunner().invoke(main, ["run", "--config", str(not_yaml)])
    assert result.exit_code == 2 and "is not valid YAML" in result.output
    no_data = tmp_path / "nodata.yaml"
    no_data.write_text("train_steps: 10\n")
    result = CliRunner().invoke(main, ["run", "--config", str(no_data)])
    assert result.exit_code == 2 and "no data path" in result.output
    out_of_range = tmp_path / "range.yaml"
    out_of_range.write_text("data: {path: .}\nevaluator: {min_map_50: 3}\n")
    result = CliRunner().invoke(main, ["run", "--config", str(out_of_range)])
    assert result.exit_code == 2 and "min_map_50 must be within [0, 1]" in result.output


def test_config_file_values_and_command_line_overrides(tmp_path):
    from detx.pipeline.config_file import build_config, merge, read_config_file

    (tmp_path / "data").mkdir()
    path = tmp_path / "detx.yaml"
    path.write_text(
        "name: shapes\ndata: {path: data, splits: {train: 3, eval: 1}}\ntrainer: {preset: tiny}\n"
        "train_steps: 100\nevaluator: {min_map_50: 0.4}\nstop_after: training\n"
    )
    config = build_config(merge(read_config_file(str(path)), {"train_steps": 7, "trainer": {"seed": 3}}))
    assert config.data.path == str(tmp_path / "data")  # relative to the file
    assert dict(config.data.splits) == {"train": 3, "eval": 1} and config.name == "shapes"
    assert config.train_steps == 7 and config.trainer.preset == "tiny" and config.trainer.seed == 3
    assert config.evaluator.min_map_50 == 0.4 and config.stop_after.value == "training"
    # A path key's words are not paths: `pretrained: production` is the warm start, not ./production.
    path.write_text("data: {path: data}\ntrainer: {pretrained: production}\n")
    assert build_config(read_config_file(str(path))).trainer.pretrained == "production"
    path.write_text("data: {path: data}\ntrainer: {pretrained: zoo/ckpt}\n")
    assert build_config(read_config_file(str(path))).trainer.pretrained == str(tmp_path / "zoo" / "ckpt")


def test_models_and_rollback(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    model = fake_saved_model(tmp_path / "m")
    store.push(model, {"metrics": {"map_50": 0.61}})
    store.push(model, {"metrics": {"map_50": 0.72}, "data": {"spans": [2, 3]}})
    result = CliRunner().invoke(main, ["models", "list", "--push-destination", dest])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "mAP@0.5 0.610" in lines[1] and "serving" not in lines[1] and "spans" not in lines[1]
    assert "mAP@0.5 0.720" in lines[2] and lines[2].rstrip().endswith("serving") and "spans 2-3" in lines[2]

    result = CliRunner().invoke(main, ["models", "rollback", "--push-destination", dest])
    assert result.exit_code == 2 and "exactly one of --to VERSION or --previous" in result.output
    result = CliRunner().invoke(main, ["models", "rollback", "--to", "9", "--push-destination", dest])
    assert result.exit_code == 1 and "version 9 is not a complete version" in result.output
    result = CliRunner().invoke(main, ["models", "rollback", "--previous", "--push-destination", dest])
    assert result.exit_code == 0 and "Now serving version 1 (was 2); retired: 2" in result.output
    assert store.serving_version() == 1
    result = CliRunner().invoke(main, ["models", "list", "--push-destination", dest])
    assert "retired by rollbacks: 2" in result.output


def _params(*args):
    command = main
    parent = main.make_context("detx", [], resilient_parsing=True)
    args = list(args)
    while isinstance(command, click.Group):
        command = command.commands[args.pop(0)]
    return command.make_context(command.name, args, parent=parent).params


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            ["serve", "--model-name", "m", "--model-base-path", "/m"],
            ["serve", "--name", "m", "--push-destination", "/m"],
        ),
        (
            ["predict", "x.jpg", "--model", "m", "--model-base-path", "/m"],
            ["predict", "x.jpg", "--name", "m", "--push-destination", "/m"],
        ),
        (["web", "--model", "m", "--model-base-path", "/m"], ["web", "--name", "m", "--push-destination", "/m"]),
        (["kfp", "runs", "--host", "http://kfp"], ["kfp", "runs", "--kubeflow-host", "http://kfp"]),
        # One name for what a command writes: `--out` (issue 30).
        (["kfp", "compile", "--output", "p.yaml"], ["kfp", "compile", "--out", "p.yaml"]),
        (["export", "tflite", "--model", "m", "--output", "t"], ["export", "tflite", "--model", "m", "--out", "t"]),
    ],
)
def test_documented_old_flags_still_work_as_hidden_aliases(old, new, monkeypatch):
    monkeypatch.setattr(click.Path, "convert", lambda self, value, param, ctx: value)
    assert _params(*old) == _params(*new)


def test_one_resolver_gives_every_command_the_same_push_destination(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"name: cars\ndata: {{path: {tmp_path}}}\npush_destination: {tmp_path / 'served'}\n")
    project = str(tmp_path / "p")
    from detx.pipeline.cli.options import model_place

    for path in (["models", "list"], ["models", "rollback"], ["rollback"], ["serve"], ["web"], ["ct", "check"]):
        with _context(path, ["--project", project]) as ctx:
            assert model_place(ctx).push_destination == os.path.join(project, "models", "detx")
        with _context(path, ["--project", project, "--config", str(config)]) as ctx:
            place = model_place(ctx)
            assert (place.name, place.push_destination) == ("cars", str(tmp_path / "served"))
        with _context(path, ["--project", project, "--name", "bikes"]) as ctx:
            assert model_place(ctx).push_destination == os.path.join(project, "models", "bikes")


def _context(path, args):
    """The context `detx <path> <args>` parses into, under the contexts of `detx` and its groups, as the CLI's.

    Not a context of its own: click keeps a command's help option as the first context it sees names it, and
    one without `detx`'s help names would drop `-h` from the CLI reference rendered later in the session.
    """
    command, parent = main, main.make_context("detx", [], resilient_parsing=True)
    for name in path[:-1]:
        command = command.commands[name]
        parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
    return command.commands[path[-1]].make_context(path[-1], args, parent=parent)


def test_models_card_paths_show_rebuild_and_the_missing_card_error(tmp_path, fake_saved_model):
    from detx.components.model_card import render

    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    store.push(fake_saved_model(tmp_path / "m"), {"pipeline": {"name": "shapes"}, "metrics": {"map_50": 0.61}})
    fake_saved_model(tmp_path / "dest" / "2")  # pushed by another tool: no lineage, no card
    card = ["models", "card", "--push-destination", dest]

    result = CliRunner().invoke(main, [*card, "1"])
    assert result.exit_code == 1
    assert "version 1 has no model card (it was pushed before detx wrote cards, or by another tool)" in result.output
    assert "detx models card 1 --rebuild" in result.output

    result = CliRunner().invoke(main, [*card, "1", "--rebuild"])
    assert result.exit_code == 0, result.output
    html, md = (os.path.join(dest, "1", name) for name in (render.CARD_HTML, render.CARD_MD))
    assert result.output.splitlines() == [
        "Model card of version 1 (rebuilt):",
        f"  HTML:     {html}",
        f"  Markdown: {md}",
    ]
    assert os.path.getsize(html) > 0

    result = CliRunner().invoke(main, [*card, "1", "--show"])
    assert result.exit_code == 0, result.output
    with open(md) as f:
        assert result.output == f.read()
    assert result.output.startswith("# Model card: shapes version 1") and "| mAP@0.5 | 0.610 |" in result.output

    result = CliRunner().invoke(main, [*card, "2", "--rebuild"])
    assert result.exit_code == 1 and "version 2 has no detx_lineage.json" in result.output
    assert not os.path.exists(os.path.join(dest, "2", render.CARD_DIR))
    result = CliRunner().invoke(main, [*card, "7"])
    assert result.exit_code == 1 and f"there is no version 7 in {dest} (versions: 1, 2)" in result.output

    # A candidate waiting for approval: its reviewers read its card before deciding.
    pending = store.push(fake_saved_model(tmp_path / "m3"), {"metrics": {"map_50": 0.7}}, pending=True)
    result = CliRunner().invoke(main, [*card, str(pending.version), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert f"  Markdown: {os.path.join(pending.path, render.CARD_MD)}" in result.output
    result = CliRunner().invoke(main, [*card, "7"])
    assert "(versions: 1, 2; pending approval: 3)" in result.output


def test_old_spellings_are_hidden_names_of_the_same_commands():
    listing = CliRunner().invoke(main, ["--help"]).output
    shown = {line.split()[0] for line in listing.split("Commands:\n")[1].splitlines() if line.strip()}
    assert shown == {path[0] for path in COMMANDS if len(path) == 1}
    for old, new in OLD_SPELLINGS.items():
        alias, command = main.commands[old], _command(new)
        assert alias.hidden and not command.hidden
        # One implementation: the new command's callback and its very parameter objects.
        assert alias.callback is command.callback
        assert len(alias.params) == len(command.params)
        assert all(a is b for a, b in zip(alias.params, command.params, strict=True))


@pytest.mark.parametrize("old", OLD_SPELLINGS)
def test_an_old_spelling_prints_the_new_ones_help_under_its_own_name(old):
    new = " ".join(OLD_SPELLINGS[old])
    old_help = CliRunner().invoke(main, [old, "--help"], prog_name="detx")
    new_help = CliRunner().invoke(main, [*OLD_SPELLINGS[old], "-h"], prog_name="detx")
    assert old_help.exit_code == new_help.exit_code == 0, old_help.output
    assert old_help.output.startswith(f"Usage: detx {old} [OPTIONS]")
    assert old_help.output == new_help.output.replace(f"Usage: detx {new} ", f"Usage: detx {old} ")


def test_compile_and_its_old_output_flag_do_what_kfp_compile_does(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data: {path: gs://b/data}\n")  # no push_destination: refused before anything is written
    base = ["--config", str(config)]
    old = CliRunner().invoke(main, ["compile", *base, "--output", str(tmp_path / "p.yaml")], prog_name="detx")
    new = CliRunner().invoke(main, ["kfp", "compile", *base, "--out", str(tmp_path / "p.yaml")], prog_name="detx")
    assert old.exit_code == new.exit_code == 2
    assert old.output == new.output.replace("detx kfp compile", "detx compile")
    assert "set push_destination" in old.output and not (tmp_path / "p.yaml").exists()


def _store_with_candidates(root, fake_saved_model):
    """A push destination: versions 1 and 2 (2 served), 3 and 4 waiting for approval, evaluated against 2."""
    store = ModelStore(str(root))
    model = fake_saved_model(f"{root}-model")
    store.push(model, {"pipeline": {"name": "shapes"}, "metrics": {"map_50": 0.61}})
    store.push(model, {"pipeline": {"name": "shapes"}, "metrics": {"map_50": 0.72}})
    for _ in range(2):
        store.push(model, {"metrics": {"map_50": 0.8}, "baseline": {"version": 2}}, pending=True)
    return store


MOVED_CASES = [
    (["rollback", "--previous"], "Now serving version 1 (was 2); retired: 2"),
    (["rollback", "--to", "9"], "version 9 is not a complete version"),
    (["rollback"], "give exactly one of --to VERSION or --previous"),
    (["approve", "3", "--by", "ana", "--reason", "card ok"], "Approved version 3 by ana: now served (was 2)"),
    (["approve", "3", "--by", "ana"], "Missing option '--reason'"),
    (["reject", "4", "--by", "bo", "--reason", "stale"], "Rejected version 4 by bo; retired to"),
]


@pytest.mark.parametrize(("old", "expected"), MOVED_CASES, ids=[" ".join(old) for old, _ in MOVED_CASES])
def test_an_old_spelling_does_what_the_new_one_does(old, expected, tmp_path, fake_saved_model):
    new = [*OLD_SPELLINGS[old[0]], *old[1:]]
    outcomes = []
    for args, root in ((old, tmp_path / "old"), (new, tmp_path / "new")):
        store = _store_with_candidates(root, fake_saved_model)
        result = CliRunner().invoke(main, [*args, "--push-destination", str(root)], prog_name="detx")
        output = result.output.replace(str(root), "<dest>").replace(" ".join(OLD_SPELLINGS[old[0]]), old[0])
        state = (store.serving_version(), store.pending_versions(), store.retired_versions())
        outcomes.append((result.exit_code, output, state))
    assert outcomes[0] == outcomes[1]
    assert expected in outcomes[0][1]


OLD_MODELS_CASES = [
    (["models"], ["models", "list"], "mAP@0.5 0.720"),
    (["models", "--card", "2", "--rebuild"], ["models", "card", "2", "--rebuild"], "Model card of version 2"),
    (["models", "--card=4", "--show"], ["models", "card", "4", "--show"], "# Model card:"),
    (["models", "--card", "9"], ["models", "card", "9"], "there is no version 9"),
    (["models", "--card"], ["models", "card"], "Missing argument 'VERSION'"),
    (["models", "--card", "0"], ["models", "card", "0"], "0 is not in the range x>=1"),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), OLD_MODELS_CASES, ids=[" ".join(old) for old, _, _ in OLD_MODELS_CASES]
)
def test_models_as_it_was_before_its_subcommands_lists_and_shows_cards(old, new, expected, tmp_path, fake_saved_model):
    store = _store_with_candidates(tmp_path / "dest", fake_saved_model)
    place = ["--push-destination", store.root]
    assert CliRunner().invoke(main, ["models", "card", "4", "--rebuild", *place]).exit_code == 0
    # The old spelling's options in either order: `--card` used to be one option among the others.
    old_result = CliRunner().invoke(main, [*old[:1], *place, *old[1:]], prog_name="detx")
    new_result = CliRunner().invoke(main, [*new, *place], prog_name="detx")
    assert old_result.exit_code == new_result.exit_code
    if old_result.exit_code == 2:  # a usage error names the command it is about
        assert old_result.output.startswith(f"Usage: detx {' '.join(new[:2])} ")
    assert old_result.output == new_result.output
    assert expected in old_result.output


def test_models_without_a_known_subcommand_says_so():
    typo = CliRunner().invoke(main, ["models", "lst"])
    assert typo.exit_code == 2 and "No such command 'lst'" in typo.output
    assert "card" in CliRunner().invoke(main, ["models", "--help"]).output  # the group's help, not list's
