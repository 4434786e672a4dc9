"""detx: object detection MLOps on TFX, Kubeflow Pipelines and TensorFlow Serving.

The repository's `pipeline/`, `components/` and `serving/` folders install as
`detx.pipeline`, `detx.components` and `detx.serving` (setup.py maps them), so
detx never shadows a user's own `components` or `pipeline` module.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`detx.DataGateResult` and `detx.TFLiteModels`, custom artifact classes, imported on first use.

    On Kubeflow, TFX's container entrypoint recreates a custom artifact class by
    importing its type name as `<module>.<Class>`, and TFX's KFP compiler only
    accepts type names with one dot. So the type name is "detx.DataGateResult"
    and this package must answer it, without importing TFX for everything else
    that imports detx.
    """
    if name == "DataGateResult":
        from detx.components.data_gate.component import DataGateResult

        return DataGateResult
    if name == "TFLiteModels":
        from detx.components.tflite.component import TFLiteModels

        return TFLiteModels
    raise AttributeError(f"module 'detx' has no attribute {name!r}")
