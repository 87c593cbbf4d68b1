"""Distributed-job configurations (was ``azureml.core.runconfig``)."""
from typing import Any, Optional

__all__ = ["PyTorchConfiguration", "MpiConfiguration", "RunConfiguration"]


class _Distribution:
    _kind = "none"

    def __init__(self, process_count: Optional[int] = None, node_count: int = 1,
                 process_count_per_node: int = 1, **kwargs: Any) -> None:
        self.node_count = int(node_count)
        self.process_count_per_node = int(process_count_per_node)
        if process_count and not kwargs.get("_ignore"):
            self.process_count_per_node = max(1, int(process_count) // max(1, self.node_count))


class PyTorchConfiguration(_Distribution):
    """``distribution: pytorch``: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK … are set on each node."""
    _kind = "pytorch"

    def __init__(self, communication_backend: str = "Nccl", process_count: Optional[int] = None,
                 node_count: int = 1, **kwargs: Any) -> None:
        super().__init__(process_count=process_count, node_count=node_count, **kwargs)
        self.communication_backend = communication_backend


class MpiConfiguration(_Distribution):
    """``distribution: mpi``."""
    _kind = "mpi"

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1, **kwargs: Any) -> None:
        super().__init__(node_count=node_count, process_count_per_node=process_count_per_node, **kwargs)


class RunConfiguration:
    """A minimal RunConfiguration: target, environment, node_count, environment_variables."""

    def __init__(self, script: Optional[str] = None, arguments: Any = None, framework: Optional[str] = None,
                 communicator: Optional[str] = None) -> None:
        from .environment import Environment
        self.script = script
        self.arguments = list(arguments or [])
        self.target: Any = "local"
        self.environment = Environment("default")
        self.node_count = 1
        self.environment_variables: dict = {}
        self.max_run_duration_seconds: Optional[int] = None
