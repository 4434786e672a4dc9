"""File-system helpers shared by the model store and the span store: local or any TensorFlow file system.

A directory appears at once on a local file system (copy into a hidden
staging directory, then `rename`); on an object store (gs://, s3://), where a
rename is a copy, the file that marks a copy complete is written last and
every reader ignores a copy without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf


def is_local(path: str) -> bool:
    """True for paths of the local file system, where a directory rename is atomic."""
    return "://" not in path or path.startswith("file://")


def strip_file_scheme(path: str) -> str:
    """The local path of a `file://` URL (other paths unchanged)."""
    return path.removeprefix("file://")


def write_atomic(path: str, data: str | bytes) -> None:
    """Writes a whole file that readers see complete or not at all, whoever else writes it at the same time.

    Locally the data goes to a temporary file with a unique name beside `path`, then is renamed
    over it (atomic on one file system); a failure removes the temporary file and leaves any old
    file as it was. On an object store one upload replaces the object whole (a rename there would
    be a copy and a delete). `tf.io.write_file` makes the object even for empty data, which GFile
    does not, and no folder markers are made (KFP's launcher trips on them).
    """
    if not is_local(path):
        tf.io.write_file(path, data)
        return
    mode = "wb" if isinstance(data, bytes) else "w"
    local = strip_file_scheme(path)
    directory = os.path.dirname(os.path.abspath(local))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{os.path.basename(local)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(staging, local)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
        raise


def read_json(path: str, fix: str, error: Callable[[str], Exception] = ValueError) -> Any:
    """The JSON value in the file at `path` (any TensorFlow file system), or None when there is no file.

    Args:
        path: the file.
        fix: what the user should do when the file is not JSON (it ends the message).
        error: the exception type (or factory) the caller's users know.

    Raises:
        error: the file is there but is not JSON; the message names the file, the parse error and `fix`.
    """
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not JSON ({e}); {fix}") from None


def list_files(tree: str) -> list[str]:
    """Every file under `tree`, relative to it, in a stable order."""
    out: list[str] = []
    for dirpath, _, filenames in tf.io.gfile.walk(tree):
        rel = os.path.relpath(dirpath, tree)
        out.extend(os.path.normpath(os.path.join(rel, name)) for name in filenames)
    return sorted(out)


def copy_tree(
    src: str,
    dst: str,
    last: str | Callable[[str], bool],
    on_file: Callable[[str], None] | None = None,
) -> int:
    """Copies every file of `src` into `dst`, the files that mark the copy complete after all others.

    Args:
        src: a directory.
        dst: where the copy goes (created).
        last: the relative path copied last, or a predicate choosing the
            relative paths copied last; their presence marks the copy complete.
        on_file: called with each relative path once it is copied.

    Returns:
        The number of files copied.
    """
    is_last = last if callable(last) else (lambda rel: rel == last)
    files = list_files(src)
    ordered = [f for f in files if not is_last(f)] + [f for f in files if is_last(f)]
    for rel in ordered:
        target = os.path.join(dst, rel)
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(os.path.join(src, rel), target, overwrite=True)
        if on_file is not None:
            on_file(rel)
    return len(ordered)


@contextlib.contextmanager
def file_lock(path: str, holder: str, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Holds an exclusive lock on a local file while the block runs, and names the holder in it.

    The kernel releases a `flock` when its process dies, so a killed holder never
    leaves a stale lock behind (`detx ct run`, `detx rollout`).

    Args:
        path: the lock file (its folder is made).
        holder: who holds it (written into the file for whoever finds it taken).
        busy: makes the error raised at once when another process holds it, from that
            holder's text ("" if it wrote none).
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise busy(f.read().strip()) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(holder)
            f.flush()
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
