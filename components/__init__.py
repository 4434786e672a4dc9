"""detx's TFX components and the plain modules they call (data, modeling, ...)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`components.DataGateResult`, the DataGate's artifact class, imported on first use.

    On Kubeflow, TFX's container entrypoint recreates a custom artifact class by
    importing its type name as `<module>.<Class>`, and the KFP compiler only
    accepts type names with one dot. So the type name is
    "components.DataGateResult" and this package must answer it, without
    importing TFX for everything else that imports `components`.
    """
    if name == "DataGateResult":
        from components.data_gate.component import DataGateResult

        return DataGateResult
    raise AttributeError(f"module 'components' has no attribute {name!r}")
