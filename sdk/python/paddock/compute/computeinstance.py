"""Compute instances (was ``azureml.core.compute.ComputeInstance``): Paddock's ``instance`` type."""
import time
from typing import Any, Dict, Optional
from urllib.parse import quote

from .._compat import warn_unsupported
from ..exceptions import ComputeTargetException
from ._base import ComputeTarget, ComputeTargetProvisioningConfiguration, _Status, register

__all__ = ["ComputeInstance", "ComputeInstanceProvisioningConfiguration", "ComputeInstanceStatus"]


class ComputeInstanceProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """What ``ComputeInstance.provisioning_configuration`` returns: an instance's properties."""
    _type = "instance"

    def __init__(self, **props: Any) -> None:
        for k, v in props.items():
            setattr(self, k, v)

    def _properties(self) -> Dict[str, Any]:
        p: Dict[str, Any] = {}
        for k in ("vm_size", "ssh_public_access", "admin_user_ssh_key", "assigned_user",
                  "idle_time_before_shutdown", "max_concurrent_runs", "tags", "description"):
            v = getattr(self, k, None)
            if v is None or v == "":
                continue
            p[k] = v
        return p


class ComputeInstanceStatus(_Status):
    """An instance's live status: state (Running, Stopped …), queued and running runs, ssh."""

    def __init__(self, target: "ComputeTarget") -> None:
        super().__init__(target)
        s, p = self._raw, target._doc.get("properties") or {}
        self.state: Optional[str] = s.get("state")
        self.queued_runs: int = int(s.get("queued_runs") or 0)
        self.running_runs: int = int(s.get("running_runs") or 0)
        self.ssh: Optional[str] = s.get("ssh")
        self.errors = self.provisioning_errors
        self.vm_size: Optional[str] = p.get("vm_size")
        self.assigned_user: Optional[str] = p.get("assigned_user")

    _keys = (("state", "state"), ("errors", "errors"), ("vm_size", "vmSize"), ("ssh", "sshSettings"),
             ("assigned_user", "personalComputeInstanceSettings"), ("queued_runs", "queuedRuns"),
             ("running_runs", "runningRuns"))


@register
class ComputeInstance(ComputeTarget):
    """A single node that belongs to one user (Azure ML's ``ComputeInstance``)."""
    _paddock_type = "instance"
    _azure_type = "ComputeInstance"
    _status_class = ComputeInstanceStatus

    @staticmethod
    def provisioning_configuration(vm_size: str = "", ssh_public_access: bool = False,
                                   admin_user_ssh_public_key: Optional[str] = None,
                                   vnet_resourcegroup_name: Optional[str] = None, vnet_name: Optional[str] = None,
                                   subnet_name: Optional[str] = None, tags: Optional[Dict[str, str]] = None,
                                   description: Optional[str] = None, assigned_user_object_id: Optional[str] = None,
                                   assigned_user_tenant_id: Optional[str] = None, *,
                                   assigned_user: Optional[str] = None, idle_time_before_shutdown: Optional[str] = None,
                                   max_concurrent_runs: Optional[int] = None
                                   ) -> ComputeInstanceProvisioningConfiguration:
        """Configuration for ``ComputeInstance.create``; ``vnet_*``, ``subnet_name`` and the Azure AD user ids
        are accepted and ignored with a warning (use ``assigned_user``)."""
        warn_unsupported("ComputeInstance.provisioning_configuration",
                         vnet_resourcegroup_name=vnet_resourcegroup_name, vnet_name=vnet_name, subnet_name=subnet_name,
                         assigned_user_object_id=assigned_user_object_id,
                         assigned_user_tenant_id=assigned_user_tenant_id)
        return ComputeInstanceProvisioningConfiguration(
            vm_size=vm_size or "STANDARD_DS3_V2", ssh_public_access=bool(ssh_public_access),
            admin_user_ssh_key=admin_user_ssh_public_key, tags=tags, description=description,
            assigned_user=assigned_user, idle_time_before_shutdown=idle_time_before_shutdown,
            max_concurrent_runs=max_concurrent_runs)

    @property
    def vm_size(self) -> Optional[str]:
        """The instance's size."""
        return self.properties.get("vm_size")

    @property
    def ssh_public_access(self) -> bool:
        """Whether SSH logins are open."""
        return bool(self.properties.get("ssh_public_access"))

    @property
    def state(self) -> Optional[str]:
        """Running, Stopped, Starting … as of the last refresh."""
        return (self._doc.get("status") or {}).get("state")

    def get_status(self) -> ComputeInstanceStatus:
        """Refreshes and returns the instance's status."""
        return super().get_status()  # type: ignore[return-value]

    def _done(self) -> bool:
        return self.provisioning_state in ("Failed", "Canceled") or (
            self.provisioning_state == "Succeeded" and self.state in ("Running", "Stopped", "Failed"))

    def _progress_line(self) -> str:
        return "%s: provisioning_state=%s state=%s" % (self.name, self.provisioning_state, self.state)

    def _action(self, action: str, wait_for_completion: bool, show_output: bool, target: str) -> None:
        path = self.workspace._path("/computes/%s:%s" % (quote(self.name, safe=""), action))
        self._doc = self.workspace._client.call("POST", path, exc=ComputeTargetException)
        if wait_for_completion:
            deadline = time.monotonic() + 20 * 60
            while self.state != target:
                if self.state == "Failed":
                    raise ComputeTargetException("%s of %s failed" % (action, self.name), code="Failed")
                if time.monotonic() > deadline:
                    raise ComputeTargetException("timed out waiting for %s to be %s" % (self.name, target),
                                                 code="Timeout")
                time.sleep(0.5)
                self.refresh_state()
                if show_output:
                    print(self._progress_line(), flush=True)

    def start(self, wait_for_completion: bool = False, show_output: bool = True) -> None:
        """Starts a stopped instance; with ``wait_for_completion``, until it is Running."""
        self._action("start", wait_for_completion, show_output, "Running")

    def stop(self, wait_for_completion: bool = False, show_output: bool = True) -> None:
        """Stops the instance (its runs are stopped); with ``wait_for_completion``, until it is Stopped."""
        self._action("stop", wait_for_completion, show_output, "Stopped")

    def restart(self, wait_for_completion: bool = False, show_output: bool = True) -> None:
        """Restarts the instance; with ``wait_for_completion``, until it is Running again."""
        self._action("restart", wait_for_completion, show_output, "Running")

    def delete(self, wait_for_completion: bool = False, show_output: bool = False) -> None:
        """Deletes the instance; with ``wait_for_completion``, until it is gone."""
        self._delete(False)
        if wait_for_completion:
            self.wait_for_completion(show_output=show_output, is_delete_operation=True)

    def update(self, *, description: Optional[str] = None, tags: Optional[Dict[str, str]] = None,
               idle_time_before_shutdown: Optional[str] = None, max_concurrent_runs: Optional[int] = None,
               **other: Any) -> "ComputeInstance":
        """Changes description, tags, idle_time_before_shutdown and max_concurrent_runs."""
        props = dict(other)
        for k, v in (("description", description), ("tags", tags),
                     ("idle_time_before_shutdown", idle_time_before_shutdown),
                     ("max_concurrent_runs", max_concurrent_runs)):
            if v is not None:
                props[k] = v
        super().update(**props)
        return self

    def detach(self) -> None:
        """Instances are deleted, not detached: raises ``ComputeTargetException``."""
        raise ComputeTargetException("detach is not supported for a ComputeInstance; use delete()", code="Invalid")
