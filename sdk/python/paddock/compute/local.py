"""The built-in ``local`` target (Azure ML's local computer)."""
from typing import Optional

from ._base import ComputeTarget, _Status, register

__all__ = ["LocalCompute", "LocalComputeStatus"]


class LocalComputeStatus(_Status):
    """Whether the server's own host is reachable as a target."""

    _keys = (("reachable", "reachable"),)

    def __init__(self, target: ComputeTarget) -> None:
        super().__init__(target)
        self.reachable: Optional[bool] = self._raw.get("reachable")


@register
class LocalCompute(ComputeTarget):
    """The built-in ``local`` target (the server's own host)."""
    _paddock_type = "local"
    _azure_type = "local"
    _status_class = LocalComputeStatus
