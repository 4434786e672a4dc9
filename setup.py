"""Installs detx: the `pipeline`, `components` and `serving` packages and the `detx` command.

Dependencies are pinned in requirements/lock.txt and installed by `make install`
(TFX 1.16 needs a two-step install on Python 3.11, see README), so this file
only names the direct ones, unpinned, for tools that read package metadata.
"""

from setuptools import find_packages, setup

setup(
    name="detx",
    version="0.1.0",
    description="MLOps for object detection on TFX, Kubeflow Pipelines and TensorFlow Serving",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "serving", "serving.*"]),
    package_data={"components.schema_gen": ["schema.pbtxt"]},
    install_requires=[
        "click",
        "numpy",
        "pillow",
        "tensorflow",
        "tensorflow-data-validation",
        "tfx",
    ],
    entry_points={"console_scripts": ["detx = pipeline.cli:main"]},
)
