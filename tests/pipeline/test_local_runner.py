"""resolve_local: what a local run decides before it builds the pipeline."""

from __future__ import annotations

import pytest

from detx.components.data.scan import DatasetError
from detx.components.data.synth import SynthConfig, write_dataset
from detx.pipeline.config_file import build_config
from detx.pipeline.local_runner import resolve_local
from detx.pipeline.project import ProjectPaths


def _config(data_dir, **data):
    return build_config({"data": {"path": str(data_dir), **data}})


def test_format_auto_reads_with_the_pattern_of_the_files_it_found_so_the_cache_sees_them(tmp_path):
    # TFX fingerprints the files the pattern matches: auto's `*` would see Annotations/ (a folder)
    # and miss an XML edited in place.
    write_dataset(str(tmp_path / "voc"), SynthConfig(num_images=3, seed=1), "voc")
    config = resolve_local(_config(tmp_path / "voc"), ProjectPaths(str(tmp_path / "project")))
    assert config.data.format == "auto" and config.data.pattern == "Annotations/*.xml"
    given = _config(tmp_path / "voc", pattern="Annotations/000*.xml")  # a pattern given is kept
    assert resolve_local(given, ProjectPaths(str(tmp_path / "p2"))).data.pattern == "Annotations/000*.xml"


def test_format_auto_on_a_folder_with_no_dataset_stops_before_the_run_naming_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="--format coco, voc, yolo or tfrecord"):
        resolve_local(_config(tmp_path / "empty"), ProjectPaths(str(tmp_path / "project")))
    explicit = _config(tmp_path / "empty", format="coco")  # a format given is not second-guessed
    config = resolve_local(explicit, ProjectPaths(str(tmp_path / "project")))
    assert config.data == explicit.data
