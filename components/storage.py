"""File-system helpers shared by the model store and the span store: local or any TensorFlow file system.

A directory appears at once on a local file system (copy into a hidden
staging directory, then `rename`); on an object store (gs://, s3://), where a
rename is a copy, the file that marks a copy complete is written last and
every reader ignores a copy without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

import tensorflow as tf


def is_local(path: str) -> bool:
    """True for paths of the local file system, where a directory rename is atomic."""
    return "://" not in path or path.startswith("file://")


def strip_file_scheme(path: str) -> str:
    """The local path of a `file://` URL (other paths unchanged)."""
    return path.removeprefix("file://")


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
