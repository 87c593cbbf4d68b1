"""Databricks workspaces (was ``azureml.core.compute.DatabricksCompute``): Paddock's ``databricks`` type, a
workspace reached over its REST API with a personal access token, where each run is a one-time Jobs run of a
``spark_python_task`` on a cluster (docs/databricks.md)."""
import os
from typing import Any, Dict, Optional

from .._compat import warn_unsupported
from ._base import _Attached, _AttachConfig, _Status, ComputeTarget, register

__all__ = ["DatabricksCompute", "DatabricksAttachConfiguration", "DatabricksComputeStatus"]


class DatabricksAttachConfiguration(_AttachConfig):
    """What ``DatabricksCompute.attach_configuration`` returns (the access token is not shown in its repr)."""


class DatabricksComputeStatus(_Status):
    """What the workspace said at attach: reachable, and the cluster's name, state and runtime version (or the
    new cluster spec's runtime version)."""

    _keys = (("reachable", "reachable"), ("cluster_name", "clusterName"), ("cluster_state", "clusterState"),
             ("spark_version", "sparkVersion"), ("error", "error"))

    def __init__(self, target: ComputeTarget) -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.cluster_name: Optional[str] = s.get("cluster_name")
        self.cluster_state: Optional[str] = s.get("cluster_state")
        self.spark_version: Optional[str] = s.get("spark_version")
        self.error: Optional[str] = s.get("error")


@register
class DatabricksCompute(_Attached):
    """A Databricks workspace (type ``databricks``): a run's script (``python3 train.py`` is taken as
    ``train.py``) runs as a Jobs run's ``spark_python_task`` on the target's cluster, from its source uploaded to
    DBFS; the task's output is the run's log and its ``./outputs`` come back."""
    _paddock_type = "databricks"
    _azure_type = "Databricks"
    _status_class = DatabricksComputeStatus

    @staticmethod
    def attach_configuration(resource_group: Optional[str] = None, workspace_name: Optional[str] = None,
                             resource_id: Optional[str] = None, access_token: str = "", *,
                             workspace_url: Optional[str] = None, cluster_id: Optional[str] = None,
                             new_cluster: Optional[Dict[str, Any]] = None,
                             max_concurrent_runs: Optional[int] = None) -> DatabricksAttachConfiguration:
        """Azure ML's parameters in Azure ML's order, and Paddock's own as keywords.

        The workspace is ``workspace_url``, else the environment variable ``PADDOCK_DATABRICKS_URL``, else
        ``https://<workspace_name>.azuredatabricks.net``. Runs go to the all-purpose cluster ``cluster_id`` (else
        ``PADDOCK_DATABRICKS_CLUSTER_ID``) or to a job cluster made from ``new_cluster`` (a Clusters API spec) for
        each run. ``resource_group`` and ``resource_id`` are ignored with one ``PaddockCompatibilityWarning``."""
        warn_unsupported("DatabricksCompute.attach_configuration", resource_group=resource_group,
                         resource_id=resource_id)
        url = workspace_url or os.environ.get("PADDOCK_DATABRICKS_URL") or (
            ("https://%s.azuredatabricks.net" % workspace_name) if workspace_name else None)
        props: Dict[str, Any] = {"workspace_url": url, "access_token": access_token}
        if new_cluster is not None:
            props["new_cluster"] = new_cluster
        else:
            cluster = cluster_id or os.environ.get("PADDOCK_DATABRICKS_CLUSTER_ID")
            if cluster:
                props["cluster_id"] = cluster
        if max_concurrent_runs is not None:
            props["max_concurrent_runs"] = max_concurrent_runs
        return DatabricksAttachConfiguration("databricks", props)
