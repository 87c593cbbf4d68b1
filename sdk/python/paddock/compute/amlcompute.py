"""Compute clusters (was ``azureml.core.compute.AmlCompute``): Paddock's ``cluster`` type."""
import time
from typing import Any, Dict, List, Optional, Union

from .._compat import warn_unsupported
from ..exceptions import ComputeTargetException
from ..workspace import Workspace
from ._base import (
    ComputeTarget, ComputeTargetProvisioningConfiguration, NodeStateCounts, _compute_path, _Status, register,
)

__all__ = ["AmlCompute", "AmlComputeProvisioningConfiguration", "AmlComputeStatus", "ScaleSettings"]


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """What ``AmlCompute.provisioning_configuration`` returns: a cluster's properties."""
    _type = "cluster"

    def __init__(self, **props: Any) -> None:
        for k, v in props.items():
            setattr(self, k, v)

    def _properties(self) -> Dict[str, Any]:
        p: Dict[str, Any] = {}
        for k in ("vm_size", "vm_priority", "min_nodes", "max_nodes", "idle_seconds_before_scaledown",
                  "admin_username", "admin_user_password", "admin_user_ssh_key", "remote_login_port_public_access",
                  "identity_type", "identity_id", "tags", "description", "provider"):
            v = getattr(self, k, None)
            if v is None or v == "":
                continue
            p[k] = v
        if getattr(self, "from_target", None):
            p["from"] = getattr(self, "from_target")
        return p

    def validate_configuration(self) -> None:
        """Checks that max_nodes is given."""
        if getattr(self, "max_nodes", None) is None:
            raise ComputeTargetException("max_nodes is required for a cluster", field="max_nodes")


class AmlComputeStatus(_Status):
    """A cluster's live status: allocation_state, current_node_count, target_node_count …"""

    def __init__(self, target: "ComputeTarget") -> None:
        super().__init__(target)
        s, p = self._raw, target._doc.get("properties") or {}
        self.allocation_state: Optional[str] = s.get("allocation_state")
        self.current_node_count: int = int(s.get("current_node_count") or 0)
        self.target_node_count: int = int(s.get("target_node_count") or 0)
        self.node_state_counts = NodeStateCounts(s.get("node_state_counts") or {})
        self.errors: List[Dict[str, Any]] = list(s.get("errors") or [])
        self.vm_size: Optional[str] = p.get("vm_size")
        self.vm_priority: Optional[str] = p.get("vm_priority")
        self.scale_settings = ScaleSettings(p)
        self.identity: Dict[str, Any] = dict(target._doc.get("identity") or {})

    _keys = (("allocation_state", "allocationState"), ("current_node_count", "currentNodeCount"),
             ("target_node_count", "targetNodeCount"), ("node_state_counts", "nodeStateCounts"),
             ("errors", "errors"), ("vm_size", "vmSize"), ("vm_priority", "vmPriority"),
             ("scale_settings", "scaleSettings"), ("identity", "identity"))


class ScaleSettings:
    """A cluster's node counts and idle time before scale-down."""

    def __init__(self, p: Dict[str, Any]) -> None:
        self.minimum_node_count = p.get("min_nodes")
        self.maximum_node_count = p.get("max_nodes")
        self.idle_seconds_before_scaledown = p.get("idle_seconds_before_scaledown")

    def serialize(self) -> Dict[str, Any]:
        """The settings with Azure ML's keys."""
        return {"minNodeCount": self.minimum_node_count, "maxNodeCount": self.maximum_node_count,
                "nodeIdleTimeBeforeScaleDown": self.idle_seconds_before_scaledown}

    def __repr__(self) -> str:
        return "ScaleSettings(%r)" % self.serialize()


@register
class AmlCompute(ComputeTarget):
    """A cluster that scales between min_nodes and max_nodes (Azure ML's ``AmlCompute``)."""
    _paddock_type = "cluster"
    _azure_type = "AmlCompute"
    _status_class = AmlComputeStatus

    @staticmethod
    def provisioning_configuration(vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                                   max_nodes: Optional[int] = None, idle_seconds_before_scaledown: Optional[int] = None,
                                   admin_username: Optional[str] = None, admin_user_password: Optional[str] = None,
                                   admin_user_ssh_key: Optional[str] = None, vnet_resourcegroup_name: Optional[str] = None,
                                   vnet_name: Optional[str] = None, subnet_name: Optional[str] = None,
                                   tags: Optional[Dict[str, str]] = None, description: Optional[str] = None,
                                   remote_login_port_public_access: str = "NotSpecified",
                                   identity_type: Optional[str] = None, identity_id: Optional[List[str]] = None,
                                   location: Optional[str] = None, enable_node_public_ip: bool = True,
                                   *, provider: Optional[str] = None, from_target: Optional[str] = None
                                   ) -> AmlComputeProvisioningConfiguration:
        """Configuration for ``ComputeTarget.create``: ``max_nodes`` is required; ``vnet_*``,
        ``subnet_name``, ``location`` and ``enable_node_public_ip=False`` are accepted and ignored with a warning."""
        warn_unsupported("AmlCompute.provisioning_configuration", vnet_resourcegroup_name=vnet_resourcegroup_name,
                         vnet_name=vnet_name, subnet_name=subnet_name, location=location,
                         enable_node_public_ip=(not enable_node_public_ip) or None)
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size or "STANDARD_D2_V2", vm_priority=vm_priority, min_nodes=min_nodes, max_nodes=max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown, admin_username=admin_username,
            admin_user_password=admin_user_password, admin_user_ssh_key=admin_user_ssh_key, tags=tags,
            description=description, remote_login_port_public_access=remote_login_port_public_access,
            identity_type=identity_type, identity_id=identity_id, provider=provider, from_target=from_target)

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: Optional[str] = None) -> List[Dict[str, Any]]:
        """The size catalog: Azure ML's keys (name, vCPUs, gpus, memoryGB) plus Paddock's (cores, memory_gb,
        family, source)."""
        doc = workspace._client.call("GET", workspace._path("/sizes"), exc=ComputeTargetException)
        out = []
        for s in (doc or {}).get("items") or []:
            d = dict(s)
            d.update({"vCPUs": s.get("cores"), "memoryGB": s.get("memory_gb"), "gpus": s.get("gpus")})
            out.append(d)
        return out

    # attributes in Azure ML's spelling
    @property
    def vm_size(self) -> Optional[str]:
        """The nodes' size."""
        return self.properties.get("vm_size")

    @property
    def vm_priority(self) -> Optional[str]:
        """dedicated or lowpriority."""
        return self.properties.get("vm_priority")

    @property
    def scale_settings(self) -> ScaleSettings:
        """min and max nodes and idle time before scale-down."""
        return ScaleSettings(self.properties)

    @property
    def admin_username(self) -> Optional[str]:
        """The nodes' admin user, if set."""
        return self.properties.get("admin_username")

    @property
    def identity_type(self) -> Optional[str]:
        """None, SystemAssigned or UserAssigned."""
        return self.properties.get("identity_type")

    @property
    def identity_id(self) -> List[str]:
        """The user-assigned identities, by name."""
        return list(self.properties.get("identity_id") or [])

    @property
    def remote_login_port_public_access(self) -> Optional[str]:
        """Enabled, Disabled or NotSpecified."""
        return self.properties.get("remote_login_port_public_access")

    def get_status(self) -> AmlComputeStatus:
        """Refreshes and returns the cluster's status."""
        return super().get_status()  # type: ignore[return-value]

    def _progress_line(self) -> str:
        s = self._doc.get("status") or {}
        return "%s: provisioning_state=%s allocation_state=%s current_node_count=%s target_node_count=%s" % (
            self.name, self.provisioning_state, s.get("allocation_state"), s.get("current_node_count"),
            s.get("target_node_count"))

    def wait_for_completion(  # type: ignore[override]  # Azure ML's order: min_node_count second
            self, show_output: bool = False, min_node_count: Optional[int] = None, timeout_in_minutes: float = 20,
            is_delete_operation: bool = False, poll_seconds: float = 0.5) -> None:
        """Waits for provisioning; with ``min_node_count`` also until that many nodes are up."""
        super().wait_for_completion(show_output=show_output, is_delete_operation=is_delete_operation,
                                    timeout_in_minutes=timeout_in_minutes, poll_seconds=poll_seconds)
        if is_delete_operation or not min_node_count:
            return
        deadline = time.monotonic() + timeout_in_minutes * 60
        while self.status.current_node_count < min_node_count:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise ComputeTargetException("timed out waiting for %d nodes on %s" % (min_node_count, self.name),
                                             code="Timeout")
            time.sleep(poll_seconds)
            self.refresh_state()
            if show_output:
                print(self._progress_line(), flush=True)

    def update(self, min_nodes: Optional[int] = None, max_nodes: Optional[int] = None,
               idle_seconds_before_scaledown: Optional[int] = None, *, description: Optional[str] = None,
               tags: Optional[Dict[str, str]] = None, **other: Any) -> "AmlCompute":
        """Changes min_nodes, max_nodes, idle_seconds_before_scaledown (and description, tags)."""
        props: Dict[str, Any] = dict(other)
        for k, v in (("min_nodes", min_nodes), ("max_nodes", max_nodes),
                     ("idle_seconds_before_scaledown", idle_seconds_before_scaledown),
                     ("description", description), ("tags", tags)):
            if v is not None:
                props[k] = v
        super().update(**props)
        return self

    def list_nodes(self) -> List[Dict[str, Any]]:
        """The cluster's nodes: Paddock's fields (id, state, hostname, address, cores …) plus Azure ML's
        ``nodeId``, ``nodeState``, ``privateIpAddress``."""
        doc = self.workspace._client.call("GET", _compute_path(self.workspace, self.name) + "/nodes",
                                          exc=ComputeTargetException)
        out = []
        for n in (doc or {}).get("items") or []:
            d = dict(n)
            d.update({"nodeId": n.get("id"), "nodeState": n.get("state"), "privateIpAddress": n.get("address")})
            out.append(d)
        return out

    def get(self) -> Dict[str, Any]:
        """Refreshes and returns ``serialize()``."""
        self.refresh_state()
        return self.serialize()

    def detach(self) -> None:
        """Clusters are deleted, not detached: raises ``ComputeTargetException``."""
        raise ComputeTargetException("detach is not supported for an AmlCompute (a created cluster); use delete()",
                                     code="Invalid")

    def add_identity(self, identity_type: str, identity_id: Optional[List[str]] = None) -> None:
        """Gives the cluster a managed identity (Azure ML's ``add_identity``): ``"SystemAssigned"`` an identity of
        its own, ``"UserAssigned"`` the identities of ``identity_id`` (names, or Azure resource ids ending in
        ``.../userAssignedIdentities/NAME``; they must exist on the server, see ``paddock identity create``), added
        to those it has. Waits until the change is applied: the runs submitted after it hold the identity."""
        self.refresh_state()
        kind = (identity_type or "").strip()
        if kind.lower() == "systemassigned":
            props: Dict[str, Any] = {"identity_type": "SystemAssigned"}
        elif kind.lower() == "userassigned":
            if not identity_id:
                raise ComputeTargetException("add_identity with identity_type UserAssigned needs identity_id, a list of "
                                             "identity names", code="Invalid", field="identity_id")
            if isinstance(identity_id, str):
                identity_id = [identity_id]
            have = self.identity_id if (self.identity_type or "").lower() == "userassigned" else []
            props = {"identity_type": "UserAssigned", "identity_id": have + [i for i in identity_id if i not in have]}
        else:
            raise ComputeTargetException("identity_type must be SystemAssigned or UserAssigned, not %r" % identity_type,
                                         code="Invalid", field="identity_type")
        self._set_identity(props)

    def remove_identity(self, identity_type: Optional[str] = None,
                        identity_id: Optional[Union[str, List[str]]] = None) -> None:
        """Removes the cluster's managed identity; with ``identity_id``, only those user-assigned identities (the
        cluster keeps the others). Runs already running lose it at once; waits until the change is applied."""
        self.refresh_state()
        if identity_id and (self.identity_type or "").lower() == "userassigned":
            ids: List[str] = [identity_id] if isinstance(identity_id, str) else list(identity_id)
            drop = {_identity_name(i).lower() for i in ids}
            keep = [i for i in self.identity_id if i.lower() not in drop]
            props: Dict[str, Any] = {"identity_type": "UserAssigned", "identity_id": keep} if keep else {"identity_type": "None"}
        else:
            if identity_type and (self.identity_type or "None").lower() != identity_type.lower():
                return  # it has no identity of that type: nothing to remove
            props = {"identity_type": "None"}
        if (self.identity_type or "None") == "None":
            return
        self._set_identity(props)

    def _set_identity(self, props: Dict[str, Any]) -> None:
        self._doc = self.workspace._client.call(
            "PATCH", _compute_path(self.workspace, self.name), body={"properties": props}, exc=ComputeTargetException)
        self.wait_for_completion(timeout_in_minutes=5)

    @property
    def identity(self) -> Dict[str, Any]:
        """The cluster's managed identity as the server reports it: ``type``, ``principal_id`` (SystemAssigned),
        ``user_assigned_identities`` (each with its ``principal_id``); empty when it has none."""
        return dict(self._doc.get("identity") or {})

    @property
    def principal_id(self) -> Optional[str]:
        """The principal id of the cluster's SystemAssigned identity."""
        return self.identity.get("principal_id")


def _identity_name(identity_id: str) -> str:
    """The identity a name or an Azure resource id (``.../userAssignedIdentities/NAME``) names."""
    return identity_id.rstrip("/").rsplit("/", 1)[-1]
