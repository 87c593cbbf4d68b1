"""Machines reached over SSH (was ``azureml.core.compute.RemoteCompute``): Paddock's ``remote`` type."""
from typing import Dict, Optional

from ._base import _Attached, _AttachConfig, _ssh_props, _Status, ComputeTarget, register

__all__ = ["RemoteCompute", "RemoteComputeAttachConfiguration", "RemoteComputeStatus"]


class RemoteComputeAttachConfiguration(_AttachConfig):
    """What ``RemoteCompute.attach_configuration`` returns (secrets are not shown in its repr)."""


class RemoteComputeStatus(_Status):
    """What the server found on an attached machine: reachable, os, cores, memory_gb, gpus."""

    _keys = (("reachable", "reachable"), ("os", "osType"), ("cores", "cores"), ("memory_gb", "memoryGB"),
             ("gpus", "gpus"), ("error", "error"))

    def __init__(self, target: ComputeTarget) -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.os: Optional[str] = s.get("os")
        self.cores: Optional[int] = s.get("cores")
        self.memory_gb: Optional[float] = s.get("memory_gb")
        self.gpus: Optional[int] = s.get("gpus")
        self.error: Optional[str] = s.get("error")


@register
class RemoteCompute(_Attached):
    """A machine reached over SSH (Azure ML's ``RemoteCompute``)."""
    _paddock_type = "remote"
    _azure_type = "VirtualMachine"
    _status_class = RemoteComputeStatus

    @staticmethod
    def attach_configuration(username: str = "", address: Optional[str] = None, ssh_port: int = 22,
                             password: str = "", private_key_file: str = "", private_key_passphrase: str = "",
                             resource_id: Optional[str] = None, *, subscription_id: Optional[str] = None,
                             resource_group: Optional[str] = None, vm_name: Optional[str] = None,
                             pool: Optional[str] = None, description: Optional[str] = None,
                             tags: Optional[Dict[str, str]] = None) -> RemoteComputeAttachConfiguration:
        """Azure ML's parameters in Azure ML's order; ``address`` is required (a resource id means nothing
        here). ``resource_id``, ``subscription_id``, ``resource_group`` and ``vm_name`` are ignored with one
        ``PaddockCompatibilityWarning``. ``pool``, ``description`` and ``tags`` are Paddock's."""
        props = _ssh_props("RemoteCompute.attach_configuration", username, address, ssh_port, password,
                           private_key_file, private_key_passphrase, resource_id, subscription_id=subscription_id,
                           resource_group=resource_group, vm_name=vm_name)
        props.update({"pool": pool, "description": description, "tags": tags})
        return RemoteComputeAttachConfiguration("remote", props)

    @property
    def address(self) -> Optional[str]:
        """The machine's host name or address."""
        return self.properties.get("address")

    @property
    def ssh_port(self) -> Optional[int]:
        """The machine's SSH port."""
        return self.properties.get("ssh_port")

    @property
    def username(self) -> Optional[str]:
        """The user Paddock logs in as."""
        return self.properties.get("username")

    def get_status(self) -> RemoteComputeStatus:
        """Refreshes and returns what the server found on the machine."""
        return super().get_status()  # type: ignore[return-value]

