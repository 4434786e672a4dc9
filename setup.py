"""Installs detx: one `detx` namespace over the repository's `pipeline`, `components` and `serving` folders.

The folders stay at the top of the repository, but they install as
`detx.pipeline`, `detx.components` and `detx.serving` (a package-dir mapping),
so that importing detx never shadows a user's own `components/` or
`pipeline.py` (Kubeflow projects often have both).

Dependencies are pinned in requirements/lock.txt and installed by `make install`
(TFX 1.16 needs a two-step install on Python 3.11, see docs/testing.md), so this
file only names the direct ones, unpinned, for tools that read package metadata.
"""

from setuptools import find_packages, setup

FOLDERS = ("pipeline", "components", "serving")

setup(
    name="detx",
    version="0.1.0",
    description="MLOps for object detection on TFX, Kubeflow Pipelines and TensorFlow Serving",
    python_requires=">=3.11,<3.12",
    packages=["detx", *(f"detx.{p}" for p in find_packages(include=[p for f in FOLDERS for p in (f, f"{f}.*")]))],
    package_dir={"detx": "detx", **{f"detx.{folder}": folder for folder in FOLDERS}},
    package_data={
        "detx.components.schema_gen": ["schema.pbtxt"],
        "detx.components.model_card": ["templates/*.j2"],
        "detx.serving.webapp": ["page.html"],
    },
    install_requires=[
        "click",
        "numpy",
        "pillow",
        "tensorflow",
        "tensorflow-data-validation",
        "tfx",
    ],
    entry_points={"console_scripts": ["detx = detx.pipeline.cli:main"]},
)
