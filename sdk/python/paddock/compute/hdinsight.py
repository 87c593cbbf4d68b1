"""Spark clusters reached over SSH (was ``azureml.core.compute.HDInsightCompute``): Paddock's ``spark`` type, a
Spark cluster's head node where runs are spark-submitted in client mode (docs/spark.md)."""
from typing import Optional

from ._base import _Attached, _AttachConfig, _ssh_props, _Status, ComputeTarget, register

__all__ = ["HDInsightCompute", "HDInsightAttachConfiguration", "HDInsightComputeStatus"]


class HDInsightAttachConfiguration(_AttachConfig):
    """What ``HDInsightCompute.attach_configuration`` returns (secrets are not shown in its repr)."""


class HDInsightComputeStatus(_Status):
    """What the server found at attach: reachable, spark_version, the master's workers (workers, worker_cores,
    worker_memory_gb) and the head node's cores and memory_gb."""

    _keys = (("reachable", "reachable"), ("spark_version", "sparkVersion"), ("workers", "workers"),
             ("worker_cores", "workerCores"), ("worker_memory_gb", "workerMemoryGB"), ("cores", "cores"),
             ("memory_gb", "memoryGB"), ("error", "error"))

    def __init__(self, target: ComputeTarget) -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.spark_version: Optional[str] = s.get("spark_version")
        self.workers: Optional[int] = s.get("workers")
        self.worker_cores: Optional[int] = s.get("worker_cores")
        self.worker_memory_gb: Optional[float] = s.get("worker_memory_gb")
        self.cores: Optional[int] = s.get("cores")
        self.memory_gb: Optional[float] = s.get("memory_gb")
        self.error: Optional[str] = s.get("error")


@register
class HDInsightCompute(_Attached):
    """A Spark cluster's head node over SSH (type ``spark``): a run's script is spark-submitted there in client
    mode (``python3 wc.py`` is taken as the PySpark application ``wc.py``), with the master and
    ``spark-submit`` the head node's own (``spark-defaults.conf``, the PATH)."""
    _paddock_type = "spark"
    _azure_type = "HDInsight"
    _status_class = HDInsightComputeStatus

    @staticmethod
    def attach_configuration(username: str = "", address: Optional[str] = None, ssh_port: int = 22,
                             password: str = "", private_key_file: str = "", private_key_passphrase: str = "",
                             resource_id: Optional[str] = None, *, subscription_id: Optional[str] = None,
                             resource_group: Optional[str] = None, cluster_name: Optional[str] = None
                             ) -> HDInsightAttachConfiguration:
        """Azure ML's parameters in Azure ML's order; ``address`` is the head node's host name (a resource id
        means nothing here). ``resource_id``, ``subscription_id``, ``resource_group`` and ``cluster_name`` are
        ignored with one ``PaddockCompatibilityWarning``."""
        props = _ssh_props("HDInsightCompute.attach_configuration", username, address, ssh_port, password,
                           private_key_file, private_key_passphrase, resource_id, subscription_id=subscription_id,
                           resource_group=resource_group, cluster_name=cluster_name)
        return HDInsightAttachConfiguration("spark", props)
