"""An existing batch scheduler (was ``azureml.core.compute.BatchCompute``): Paddock's ``slurm`` type, a Slurm
cluster attached through its login node. Azure Batch accounts are not offered."""
from typing import Optional

from .._compat import warn_unsupported
from ._base import _Attached, _AttachConfig, _read_file, not_offered, register

__all__ = ["BatchCompute", "BatchAttachConfiguration"]


class BatchAttachConfiguration(_AttachConfig):
    """What ``BatchCompute.attach_configuration`` returns (secrets are not shown in its repr)."""


@register
class BatchCompute(_Attached):
    """An existing batch scheduler: Paddock's ``slurm`` type, a Slurm cluster attached through its
    login node over SSH (``address``, ``username`` and a password or key); runs become Slurm jobs."""
    _paddock_type = "slurm"
    _azure_type = "Batch"

    @staticmethod
    def attach_configuration(resource_group: Optional[str] = None, account_name: Optional[str] = None,
                             resource_id: Optional[str] = None, *, address: Optional[str] = None,
                             ssh_port: Optional[int] = None, username: Optional[str] = None,
                             password: Optional[str] = None, private_key_file: Optional[str] = None,
                             rest_url: Optional[str] = None, jwt: Optional[str] = None,
                             partition: Optional[str] = None, account: Optional[str] = None,
                             qos: Optional[str] = None, lowpriority_qos: Optional[str] = None,
                             slurm_conf: Optional[str] = None) -> BatchAttachConfiguration:
        """Azure ML's parameters (``resource_group``, ``account_name``, ``resource_id``) name an Azure Batch
        account, which Paddock does not offer: given alone they raise ``ComputeTargetException``; given with
        Paddock's ``address`` (or ``rest_url``) of a Slurm login node they are ignored with one warning."""
        if not address and not rest_url:
            raise not_offered("Azure Batch accounts (resource_group, account_name, resource_id)",
                              "attach a Slurm cluster instead: BatchCompute.attach_configuration(address=<its login "
                              "node>, username=..., private_key_file=... or password=..., partition=...)")
        warn_unsupported("BatchCompute.attach_configuration", resource_group=resource_group,
                         account_name=account_name, resource_id=resource_id)
        props = {"address": address, "ssh_port": ssh_port, "username": username, "password": password,
                 "private_key": _read_file(private_key_file, "private_key_file"), "rest_url": rest_url,
                 "jwt": jwt, "partition": partition, "account": account, "qos": qos,
                 "lowpriority_qos": lowpriority_qos, "slurm_conf": slurm_conf}
        return BatchAttachConfiguration("slurm", props)
