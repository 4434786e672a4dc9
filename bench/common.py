"""What the benchmarks share: the repository's paths, and the repository root on `sys.path`.

A bench script runs as `python bench/<script>.py`, so Python puts bench/ on
`sys.path`, not the repository root; importing this module appends the root,
so that scripts import the tests' and benchmarks' helpers in testing/ (not
installed). Appended, not prepended: the installed `detx` stays the one
imported (the root's detx/ holds only the namespace's `__init__.py`).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Where full runs write their JSON results (BENCHMARKS.md quotes them).
OUT = os.path.join(HERE, "out")

if REPO not in sys.path:
    sys.path.append(REPO)
