"""Spark clusters reached over SSH (was ``azureml.core.compute.HDInsightCompute``): Paddock's ``spark`` type,
which the server does not offer yet."""
from typing import Optional

from ._base import _Attached, _AttachConfig, _ssh_props, register

__all__ = ["HDInsightCompute", "HDInsightAttachConfiguration"]


class HDInsightAttachConfiguration(_AttachConfig):
    """What ``HDInsightCompute.attach_configuration`` returns (secrets are not shown in its repr)."""

    _not_offered = ("HDInsight (Spark) compute targets yet",
                    "run Spark jobs on a RemoteCompute or a cluster with spark-submit in the run's command")


@register
class HDInsightCompute(_Attached):
    """A Spark cluster's head node over SSH (type ``spark``; the server does not offer it yet)."""
    _paddock_type = "spark"
    _azure_type = "HDInsight"

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
