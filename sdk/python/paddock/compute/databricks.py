"""Azure Databricks workspaces (was ``azureml.core.compute.DatabricksCompute``): Paddock's ``databricks``
type, which the server does not offer yet."""
from typing import Optional

from .._compat import warn_unsupported
from ._base import _Attached, _AttachConfig, register

__all__ = ["DatabricksCompute", "DatabricksAttachConfiguration"]


class DatabricksAttachConfiguration(_AttachConfig):
    """What ``DatabricksCompute.attach_configuration`` returns (the access token is not shown in its repr)."""

    _not_offered = ("Databricks compute targets yet", "run on a cluster, an instance or a RemoteCompute")


@register
class DatabricksCompute(_Attached):
    """A Databricks workspace (type ``databricks``; the server does not offer it yet)."""
    _paddock_type = "databricks"
    _azure_type = "Databricks"

    @staticmethod
    def attach_configuration(resource_group: Optional[str] = None, workspace_name: Optional[str] = None,
                             resource_id: Optional[str] = None, access_token: str = "", *,
                             workspace_url: Optional[str] = None) -> DatabricksAttachConfiguration:
        """Azure ML's parameters in Azure ML's order; ``workspace_url`` (Paddock's) is the workspace's URL, else
        ``https://<workspace_name>.azuredatabricks.net``. ``resource_group`` and ``resource_id`` are ignored with
        one ``PaddockCompatibilityWarning``."""
        warn_unsupported("DatabricksCompute.attach_configuration", resource_group=resource_group,
                         resource_id=resource_id)
        url = workspace_url or (("https://%s.azuredatabricks.net" % workspace_name) if workspace_name else None)
        return DatabricksAttachConfiguration("databricks", {"workspace_url": url, "access_token": access_token})
