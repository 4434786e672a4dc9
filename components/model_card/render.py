"""The model card of a version: its lineage laid out as Markdown (for git and reviewers) and self-contained HTML.

The templates (`templates/model_card.{md,html}.j2`) only lay out what
`sections.view` prepared from the lineage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import jinja2
import tensorflow as tf

from detx.components import storage
from detx.components.model_card.facts import ModelCardError, data_facts, training_facts
from detx.components.model_card.sections import NOT_RECORDED, view
from detx.components.model_store import RETIRED_DIR, ModelStore

CARD_DIR = "model_card"
CARD_MD = f"{CARD_DIR}/model_card.md"
CARD_HTML = f"{CARD_DIR}/model_card.html"
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
__all__ = ["CARD_DIR", "CARD_HTML", "CARD_MD", "NOT_RECORDED", "rebuild", "render", "version_dir", "write"]

# A "<" that CommonMark would read as the start of raw HTML (a tag, a comment, a declaration).
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md_text(value: Any) -> str:
    # Raw HTML in a card would be run or silently dropped by a Markdown viewer (a class named
    # "<script>" would vanish); "a >= b" stays readable in the raw file.
    return _HTML_START.sub("&lt;", str(value))


def _md_cell(value: Any) -> str:
    # A cell must also not end its table row or its line.
    return _md_text(value).replace("|", "\\|").replace("\n", " ")


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(cell=_md_cell, md=_md_text)
    return env


def render(lineage: Mapping[str, Any], production: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The card's files, by their path inside the version directory (CARD_MD, CARD_HTML).

    Args:
        lineage: the version's `detx_lineage.json` (any key may be missing: it reads "not recorded").
        production: the lineage of the version that was in production when this one was
            evaluated (None if none was); it names that version. Production's numbers on this
            version's eval data are `lineage["baseline"]["metrics"]` (and, per slice,
            `lineage["evaluation"]["baseline_slices"]`), never its own card's, which come from other data.
    """
    content = view(lineage, production)
    md = _environment(autoescape=False).get_template("model_card.md.j2").render(**content)
    html = _environment(autoescape=True).get_template("model_card.html.j2").render(**content)
    return {CARD_MD: md.encode("utf-8"), CARD_HTML: html.encode("utf-8")}


def write(version_dir: str, lineage: Mapping[str, Any], production: Mapping[str, Any] | None) -> dict[str, str]:
    """Renders the card into `version_dir` (any tf.io.gfile path); returns {relative path: full path}.

    Each file is written under a temporary name and renamed; the HTML, the one
    the web page serves, goes last.
    """
    files = render(lineage, production)
    tf.io.gfile.makedirs(os.path.join(version_dir, CARD_DIR))
    written = {}
    for name in (CARD_MD, CARD_HTML):
        path = os.path.join(version_dir, name)
        storage.write_atomic(path, files[name])
        written[name] = path
    return written


def version_dir(store: ModelStore, version: int) -> str | None:
    """Where `version` is: served (`<root>/N`), pending approval or retired; None when it is nowhere."""
    for path in (store.path(version), store.pending_path(version), os.path.join(store.root, RETIRED_DIR, str(version))):
        if tf.io.gfile.isdir(path):
            return path
    return None


def rebuild(store: ModelStore, version: int) -> dict[str, str]:
    """Re-renders a version's card from its lineage, in place (`detx models --card N --rebuild`).

    Facts the lineage lacks (versions pushed before cards existed) are read
    where they still are: the training facts inside the pushed model, the data
    facts from the Examples artifact if it still exists.

    Args:
        store: the push destination's `ModelStore`.
        version: the version number.

    Raises:
        ModelCardError: no such version, or no lineage to build a card from.
    """
    found = version_dir(store, version)
    if found is None:
        raise ModelCardError(f"there is no version {version} in {store.root}; `detx models` lists the versions")
    lineage = dict(store.lineage_at(found))
    if not lineage:
        raise ModelCardError(
            f"version {version} has no detx_lineage.json (pushed by another tool?): there is nothing to build "
            "its card from; push the model with the detx pipeline to get one"
        )
    if not lineage.get("training"):
        lineage["training"] = training_facts(found)
    examples_uri = (lineage.get("data") or {}).get("examples_uri")
    if not lineage.get("data_facts") and examples_uri and tf.io.gfile.isdir(examples_uri):
        lineage["data_facts"] = data_facts(examples_uri)
    baseline_version = (lineage.get("baseline") or {}).get("version")
    production = store.lineage(baseline_version) if baseline_version is not None else None
    return write(found, lineage, production or None)
