"""`storage.write_atomic`: readers see a whole file or the old one, whoever writes at the same time."""

from __future__ import annotations

import os
import threading

import pytest

from detx.components import storage


def test_text_and_bytes_replace_the_file_whole_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "deep" / "state.json"
    storage.write_atomic(str(path), '{"a": 1}')
    storage.write_atomic(f"file://{path}", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "label_map.pbtxt"
    storage.write_atomic(str(path), "old")
    with pytest.raises(TypeError):
        storage.write_atomic(str(path), 42)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["label_map.pbtxt"]


def test_concurrent_writers_never_leave_a_mixed_or_missing_file(tmp_path):
    path = str(tmp_path / "traffic.json")
    texts = [str(n) * 200_000 for n in range(8)]
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            for _ in range(5):
                storage.write_atomic(path, text)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # a fixed temporary name made writers trip over each other's file
    with open(path) as f:
        assert f.read() in texts
    assert os.listdir(tmp_path) == ["traffic.json"]


class _Named(Exception):
    pass


def test_read_json_returns_none_for_no_file_and_names_file_and_fix_for_bad_json(tmp_path):
    path = tmp_path / "traffic.json"
    assert storage.read_json(str(path), "delete it") is None
    path.write_text('{"stable": 1}')
    assert storage.read_json(str(path), "delete it") == {"stable": 1}
    path.write_bytes(b"\xff{")
    with pytest.raises(_Named, match=r"traffic\.json is not JSON \(.*\); delete it$"):
        storage.read_json(str(path), "delete it", _Named)
