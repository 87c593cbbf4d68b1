"""Compute targets: clusters (AmlCompute), instances, attached machines."""
import os
import time
from typing import Any, Dict, List, Optional, Type, TypeVar, Union
from urllib.parse import quote

from .._compat import warn_unsupported
from ..exceptions import ComputeTargetException, PaddockException
from ..workspace import Workspace

T = TypeVar("T", bound="ComputeTarget")

_TERMINAL = ("Succeeded", "Failed", "Canceled")


def _read_file(path: Optional[str], what: str) -> Optional[str]:
    if not path:
        return None
    path = os.path.expanduser(path)  # '~/.ssh/id_ed25519', as a shell would
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ComputeTargetException("cannot read %s %s: %s" % (what, path, e.strerror or e)) from None


# --------------------------------------------------------------------------
# configurations

class ComputeTargetProvisioningConfiguration:
    """Base of the configurations given to ``ComputeTarget.create``."""
    _type = ""

    def _properties(self) -> Dict[str, Any]:
        raise NotImplementedError

    def validate_configuration(self) -> None:
        """Checks the configuration locally; the server validates it again."""


class ComputeTargetAttachConfiguration:
    """Base of the configurations given to ``ComputeTarget.attach``."""
    _type = ""

    def _properties(self) -> Dict[str, Any]:
        raise NotImplementedError

    def validate_configuration(self) -> None:
        """Checks the configuration locally; the server validates it again."""


AttachConfiguration = ComputeTargetAttachConfiguration


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
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
        if "from_target" in self.__dict__ and self.from_target:
            p["from"] = self.from_target
        return p

    def validate_configuration(self) -> None:
        if getattr(self, "max_nodes", None) is None:
            raise ComputeTargetException("max_nodes is required for a cluster", field="max_nodes")


class ComputeInstanceProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
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


class _AttachConfig(ComputeTargetAttachConfiguration):
    def __init__(self, type_: str, props: Dict[str, Any]) -> None:
        self._type = type_
        self._props = {k: v for k, v in props.items() if v is not None and v != ""}

    def _properties(self) -> Dict[str, Any]:
        return dict(self._props)

    def __repr__(self) -> str:
        secret = {"password", "private_key", "private_key_passphrase", "access_token", "kubeconfig", "jwt"}
        shown = {k: ("***" if k in secret else v) for k, v in self._props.items()}
        return "%s(type=%r, %r)" % (type(self).__name__, self._type, shown)


class RemoteComputeAttachConfiguration(_AttachConfig):
    pass


class HDInsightAttachConfiguration(_AttachConfig):
    pass


class BatchAttachConfiguration(_AttachConfig):
    pass


class DatabricksAttachConfiguration(_AttachConfig):
    pass


class KubernetesAttachConfiguration(_AttachConfig):
    pass


# --------------------------------------------------------------------------
# status objects

class _Status:
    def __init__(self, target: "ComputeTarget") -> None:
        d = target._doc
        self.provisioning_state: Optional[str] = d.get("provisioning_state")
        self.provisioning_errors: List[Dict[str, Any]] = list(d.get("provisioning_errors") or [])
        self.creation_time: Optional[str] = d.get("created_at")
        self.modified_time: Optional[str] = d.get("updated_at")
        self.created_by: Optional[str] = d.get("created_by")
        self._raw: Dict[str, Any] = dict(d.get("status") or {})

    def serialize(self) -> Dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        for k, v in list(out.items()):
            if hasattr(v, "serialize"):
                out[k] = v.serialize()
        return out

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.serialize())


class NodeStateCounts:
    def __init__(self, counts: Dict[str, int]) -> None:
        self.idle_node_count = int(counts.get("idle", 0))
        self.running_node_count = int(counts.get("running", 0))
        self.preparing_node_count = int(counts.get("preparing", 0))
        self.unusable_node_count = int(counts.get("unusable", 0))
        self.leaving_node_count = int(counts.get("leaving", 0))
        self.preempted_node_count = int(counts.get("preempted", 0))

    def serialize(self) -> Dict[str, int]:
        return {"idleNodeCount": self.idle_node_count, "runningNodeCount": self.running_node_count,
                "preparingNodeCount": self.preparing_node_count, "unusableNodeCount": self.unusable_node_count,
                "leavingNodeCount": self.leaving_node_count, "preemptedNodeCount": self.preempted_node_count}

    def __repr__(self) -> str:
        return "NodeStateCounts(%r)" % self.serialize()


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


class ScaleSettings:
    def __init__(self, p: Dict[str, Any]) -> None:
        self.minimum_node_count = p.get("min_nodes")
        self.maximum_node_count = p.get("max_nodes")
        self.idle_seconds_before_scaledown = p.get("idle_seconds_before_scaledown")

    def serialize(self) -> Dict[str, Any]:
        return {"minNodeCount": self.minimum_node_count, "maxNodeCount": self.maximum_node_count,
                "nodeIdleTimeBeforeScaleDown": self.idle_seconds_before_scaledown}

    def __repr__(self) -> str:
        return "ScaleSettings(%r)" % self.serialize()


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


class RemoteComputeStatus(_Status):
    """What the server found on an attached machine: reachable, os, cores, memory_gb, gpus."""

    def __init__(self, target: "ComputeTarget") -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.os: Optional[str] = s.get("os")
        self.cores: Optional[int] = s.get("cores")
        self.memory_gb: Optional[float] = s.get("memory_gb")
        self.gpus: Optional[int] = s.get("gpus")
        self.error: Optional[str] = s.get("error")


class KubernetesComputeStatus(_Status):
    """What the server sees of an attached Kubernetes cluster: reachable, version, its nodes (name, ready, and
    the cores, memory_gb and gpus each offers pods) and their totals."""

    def __init__(self, target: "ComputeTarget") -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.version: Optional[str] = s.get("version")
        self.node_count: Optional[int] = s.get("node_count")
        self.cores: Optional[float] = s.get("cores")
        self.memory_gb: Optional[float] = s.get("memory_gb")
        self.gpus: Optional[int] = s.get("gpus")
        self.nodes: List[Dict[str, Any]] = list(s.get("nodes") or [])
        self.nodes_error: Optional[str] = s.get("nodes_error")
        self.error: Optional[str] = s.get("error")


class LocalComputeStatus(_Status):
    def __init__(self, target: "ComputeTarget") -> None:
        super().__init__(target)
        self.reachable: Optional[bool] = self._raw.get("reachable")


# --------------------------------------------------------------------------
# targets

class ComputeTarget:
    """A compute target of a workspace (Azure ML's ``ComputeTarget``).

    ``ComputeTarget(workspace=ws, name=N)`` looks the target up and returns the
    object of its type (``AmlCompute``, ``ComputeInstance``, ``RemoteCompute``
    …); it raises ``ComputeTargetException`` when there is none.
    """

    _paddock_type: Optional[str] = None  # the server's type this class stands for
    _azure_type = "ComputeTarget"
    _status_class: Type[_Status] = _Status

    def __new__(cls, workspace: Optional[Workspace] = None, name: Optional[str] = None, *args: Any, **kw: Any):
        if workspace is None or name is None:  # deserialisation / internal construction
            return super().__new__(cls)
        doc = _get(workspace, name)
        sub = _class_for(doc.get("type", ""))
        if cls is not ComputeTarget and not issubclass(sub, cls):
            raise ComputeTargetException(
                "compute target %r is of type %r, not %s" % (doc.get("name"), doc.get("type"), cls.__name__),
                code="Invalid")
        obj = super().__new__(sub)
        obj._init(workspace, doc)
        return obj

    def __init__(self, workspace: Optional[Workspace] = None, name: Optional[str] = None) -> None:
        # everything happened in __new__
        pass

    def _init(self, workspace: Workspace, doc: Dict[str, Any]) -> None:
        self.workspace = workspace
        self._doc = doc

    @classmethod
    def _wrap(cls, workspace: Workspace, doc: Dict[str, Any]) -> "ComputeTarget":
        obj = object.__new__(_class_for(doc.get("type", "")))
        obj._init(workspace, doc)
        return obj

    # -- attributes ------------------------------------------------------
    @property
    def name(self) -> str:
        return self._doc.get("name", "")

    @property
    def type(self) -> str:
        """The Azure ML spelling of the type (``AmlCompute``, ``ComputeInstance``, ``VirtualMachine`` …)."""
        return self._azure_type

    @property
    def paddock_type(self) -> str:
        """The server's type: ``cluster``, ``instance``, ``remote`` or ``local``."""
        return self._doc.get("type", "")

    @property
    def provisioning_state(self) -> Optional[str]:
        return self._doc.get("provisioning_state")

    @property
    def provisioning_errors(self) -> List[Dict[str, Any]]:
        return list(self._doc.get("provisioning_errors") or [])

    @property
    def properties(self) -> Dict[str, Any]:
        return dict(self._doc.get("properties") or {})

    @property
    def status(self) -> _Status:
        return self._status_class(self)

    @property
    def tags(self) -> Dict[str, str]:
        return dict(self.properties.get("tags") or {})

    @property
    def description(self) -> Optional[str]:
        return self.properties.get("description")

    @property
    def created_by(self) -> Optional[str]:
        return self._doc.get("created_by")

    @property
    def created_on(self) -> Optional[str]:
        return self._doc.get("created_at")

    @property
    def modified_on(self) -> Optional[str]:
        return self._doc.get("updated_at")

    @property
    def location(self) -> Optional[str]:
        return None

    @property
    def cluster_resource_id(self) -> str:
        return "%s/workspaces/%s/computes/%s" % (self.workspace.server, self.workspace.name, self.name)

    id = cluster_resource_id

    # -- class methods ---------------------------------------------------
    @staticmethod
    def create(workspace: Workspace, name: str,
               provisioning_configuration: ComputeTargetProvisioningConfiguration) -> "ComputeTarget":
        """Creates a cluster or instance; returns at once (``wait_for_completion`` follows it)."""
        cfg = provisioning_configuration
        if not isinstance(cfg, ComputeTargetProvisioningConfiguration):
            raise ComputeTargetException(
                "ComputeTarget.create needs a provisioning configuration (e.g. AmlCompute.provisioning_configuration); "
                "use ComputeTarget.attach for an attach configuration")
        cfg.validate_configuration()
        return _post(workspace, name, cfg._type, cfg._properties())

    @staticmethod
    def attach(workspace: Workspace, name: str,
               attach_configuration: ComputeTargetAttachConfiguration) -> "ComputeTarget":
        """Attaches an existing machine or scheduler. Paddock answers 400 for types it cannot attach yet
        (spark, slurm, databricks, kubernetes); the server's message is raised as ComputeTargetException."""
        cfg = attach_configuration
        if not isinstance(cfg, ComputeTargetAttachConfiguration):
            raise ComputeTargetException("ComputeTarget.attach needs an attach configuration "
                                         "(e.g. RemoteCompute.attach_configuration)")
        cfg.validate_configuration()
        return _post(workspace, name, cfg._type, cfg._properties())

    @staticmethod
    def list(workspace: Workspace) -> List["ComputeTarget"]:
        doc = workspace._client.call("GET", workspace._path("/computes"), exc=ComputeTargetException)
        return [ComputeTarget._wrap(workspace, d) for d in (doc or {}).get("items") or []]

    @staticmethod
    def deserialize(workspace: Workspace, object_dict: Dict[str, Any]) -> "ComputeTarget":
        doc = object_dict.get("paddock") or object_dict
        return ComputeTarget._wrap(workspace, doc)

    # -- instance methods ------------------------------------------------
    def refresh_state(self) -> None:
        self._doc = _get(self.workspace, self.name)

    def get_status(self) -> _Status:
        """Refreshes and returns the live status object."""
        self.refresh_state()
        return self.status

    def _done(self) -> bool:
        return self.provisioning_state in _TERMINAL

    def wait_for_completion(self, show_output: bool = False, is_delete_operation: bool = False,
                            timeout_in_minutes: float = 20, poll_seconds: float = 0.5) -> None:
        """Waits until provisioning (or an update, or a delete) has finished.

        Raises ``ComputeTargetException`` if provisioning failed or time ran out."""
        deadline = time.monotonic() + timeout_in_minutes * 60
        last = None
        while True:
            try:
                self.refresh_state()
            except ComputeTargetException as e:
                if is_delete_operation and e.status == 404:
                    if show_output:
                        print("Deleted %s." % self.name, flush=True)
                    return
                raise
            state = self.provisioning_state
            if show_output and state != last:
                print(self._progress_line(), flush=True)
                last = state
            if not is_delete_operation and self._done():
                break
            if time.monotonic() > deadline:
                raise ComputeTargetException("timed out after %g minutes waiting for %s (provisioning_state %s)"
                                             % (timeout_in_minutes, self.name, state), code="Timeout")
            time.sleep(poll_seconds)
        if show_output:
            print('Provisioning operation finished, operation "%s"' % self.provisioning_state, flush=True)
        if self.provisioning_state == "Failed":
            errs = "; ".join("%s: %s" % (e.get("code"), e.get("message")) for e in self.provisioning_errors)
            raise ComputeTargetException("provisioning %s failed: %s" % (self.name, errs or "no reason given"),
                                         code="ProvisioningFailed")

    def _progress_line(self) -> str:
        return "%s: %s" % (self.name, self.provisioning_state)

    def update(self, **properties: Any) -> "ComputeTarget":
        """Changes updatable properties (description, tags; per type see the subclasses)."""
        self._doc = self.workspace._client.call(
            "PATCH", _compute_path(self.workspace, self.name), body={"properties": properties},
            exc=ComputeTargetException)
        return self

    def delete(self, force: bool = False) -> None:
        """Deletes a created target (it goes to Deleting and disappears in the background)."""
        self._delete(force)

    def detach(self) -> None:
        """Detaches an attached target."""
        self._delete(False)

    def _delete(self, force: bool) -> None:
        self._doc = self.workspace._client.call(
            "DELETE", _compute_path(self.workspace, self.name), query={"force": True} if force else None,
            exc=ComputeTargetException) or self._doc

    def serialize(self) -> Dict[str, Any]:
        """A JSON-able dict in the shape of Azure ML's (``properties.computeType`` …); ``paddock`` holds the
        server's own document."""
        return {
            "id": self.cluster_resource_id, "name": self.name, "location": None, "tags": self.tags,
            "properties": {
                "computeType": self.type, "provisioningState": self.provisioning_state,
                "provisioningErrors": self.provisioning_errors, "description": self.description,
                "createdOn": self.created_on, "modifiedOn": self.modified_on,
                "properties": self.properties, "status": dict(self._doc.get("status") or {}),
            },
            "paddock": self._doc,
        }

    def __repr__(self) -> str:
        return "%s(workspace=%r, name=%r, type=%r, provisioning_state=%r)" % (
            type(self).__name__, self.workspace, self.name, self.paddock_type, self.provisioning_state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ComputeTarget) and (self.workspace, self.name) == (other.workspace, other.name)

    def __hash__(self) -> int:
        return hash((self.workspace, self.name.lower()))


class LocalCompute(ComputeTarget):
    """The built-in ``local`` target (the server's own host)."""
    _paddock_type = "local"
    _azure_type = "local"
    _status_class = LocalComputeStatus


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
        return self.properties.get("vm_size")

    @property
    def vm_priority(self) -> Optional[str]:
        return self.properties.get("vm_priority")

    @property
    def scale_settings(self) -> ScaleSettings:
        return ScaleSettings(self.properties)

    @property
    def admin_username(self) -> Optional[str]:
        return self.properties.get("admin_username")

    @property
    def identity_type(self) -> Optional[str]:
        return self.properties.get("identity_type")

    @property
    def identity_id(self) -> List[str]:
        return list(self.properties.get("identity_id") or [])

    @property
    def remote_login_port_public_access(self) -> Optional[str]:
        return self.properties.get("remote_login_port_public_access")

    def get_status(self) -> AmlComputeStatus:  # type: ignore[override]
        return super().get_status()  # type: ignore[return-value]

    def _progress_line(self) -> str:
        s = self._doc.get("status") or {}
        return "%s: provisioning_state=%s allocation_state=%s current_node_count=%s target_node_count=%s" % (
            self.name, self.provisioning_state, s.get("allocation_state"), s.get("current_node_count"),
            s.get("target_node_count"))

    def wait_for_completion(self, show_output: bool = False, min_node_count: Optional[int] = None,
                            timeout_in_minutes: float = 20, is_delete_operation: bool = False,
                            poll_seconds: float = 0.5) -> None:
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

    def update(self, min_nodes: Optional[int] = None, max_nodes: Optional[int] = None,  # type: ignore[override]
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
        self.refresh_state()
        return self.serialize()

    def detach(self) -> None:
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

    def remove_identity(self, identity_type: Optional[str] = None, identity_id: Optional[List[str]] = None) -> None:
        """Removes the cluster's managed identity; with ``identity_id``, only those user-assigned identities (the
        cluster keeps the others). Runs already running lose it at once; waits until the change is applied."""
        self.refresh_state()
        if identity_id and (self.identity_type or "").lower() == "userassigned":
            drop = {_identity_name(i).lower() for i in ([identity_id] if isinstance(identity_id, str) else identity_id)}
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
        return self.properties.get("vm_size")

    @property
    def ssh_public_access(self) -> bool:
        return bool(self.properties.get("ssh_public_access"))

    @property
    def state(self) -> Optional[str]:
        return (self._doc.get("status") or {}).get("state")

    def get_status(self) -> ComputeInstanceStatus:  # type: ignore[override]
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

    def start(self, wait_for_completion: bool = True, show_output: bool = True) -> None:
        self._action("start", wait_for_completion, show_output, "Running")

    def stop(self, wait_for_completion: bool = True, show_output: bool = True) -> None:
        self._action("stop", wait_for_completion, show_output, "Stopped")

    def restart(self, wait_for_completion: bool = True, show_output: bool = True) -> None:
        self._action("restart", wait_for_completion, show_output, "Running")

    def update(self, *, description: Optional[str] = None, tags: Optional[Dict[str, str]] = None,  # type: ignore
               idle_time_before_shutdown: Optional[str] = None, max_concurrent_runs: Optional[int] = None,
               **other: Any) -> "ComputeInstance":
        props = dict(other)
        for k, v in (("description", description), ("tags", tags),
                     ("idle_time_before_shutdown", idle_time_before_shutdown),
                     ("max_concurrent_runs", max_concurrent_runs)):
            if v is not None:
                props[k] = v
        super().update(**props)
        return self

    def detach(self) -> None:
        raise ComputeTargetException("detach is not supported for a ComputeInstance; use delete()", code="Invalid")


class _Attached(ComputeTarget):
    def delete(self, force: bool = False) -> None:
        raise ComputeTargetException("delete is not supported for an attached %s; use detach()" % self._azure_type,
                                     code="Invalid")


def _attach_props(resource_id: Optional[str], address: Optional[str], ssh_port: int, username: Optional[str],
                  password: Optional[str], private_key_file: Optional[str], private_key_passphrase: Optional[str],
                  where: str) -> Dict[str, Any]:
    warn_unsupported(where, resource_id=resource_id)
    if not address:
        raise ComputeTargetException(
            "%s needs address (a host name or IP address reachable over SSH); Azure resource ids have no "
            "meaning to Paddock" % where, code="Invalid", field="address")
    return {"address": address, "ssh_port": ssh_port, "username": username, "password": password,
            "private_key": _read_file(private_key_file, "private_key_file"),
            "private_key_passphrase": private_key_passphrase}


class RemoteCompute(_Attached):
    """A machine reached over SSH (Azure ML's ``RemoteCompute``)."""
    _paddock_type = "remote"
    _azure_type = "VirtualMachine"
    _status_class = RemoteComputeStatus

    @staticmethod
    def attach_configuration(address: Optional[str] = None, ssh_port: int = 22, username: Optional[str] = None,
                             password: Optional[str] = None, private_key_file: Optional[str] = None,
                             private_key_passphrase: Optional[str] = None, resource_id: Optional[str] = None,
                             *, pool: Optional[str] = None, description: Optional[str] = None,
                             tags: Optional[Dict[str, str]] = None) -> RemoteComputeAttachConfiguration:
        props = _attach_props(resource_id, address, ssh_port, username, password, private_key_file,
                              private_key_passphrase, "RemoteCompute.attach_configuration")
        props.update({"pool": pool, "description": description, "tags": tags})
        return RemoteComputeAttachConfiguration("remote", props)

    @property
    def address(self) -> Optional[str]:
        return self.properties.get("address")

    @property
    def ssh_port(self) -> Optional[int]:
        return self.properties.get("ssh_port")

    @property
    def username(self) -> Optional[str]:
        return self.properties.get("username")

    def get_status(self) -> RemoteComputeStatus:  # type: ignore[override]
        return super().get_status()  # type: ignore[return-value]


class HDInsightCompute(_Attached):
    """A Spark cluster's head node over SSH (type ``spark``; not supported by the server yet)."""
    _paddock_type = "spark"
    _azure_type = "HDInsight"

    @staticmethod
    def attach_configuration(address: Optional[str] = None, ssh_port: int = 22, username: Optional[str] = None,
                             password: Optional[str] = None, private_key_file: Optional[str] = None,
                             private_key_passphrase: Optional[str] = None,
                             resource_id: Optional[str] = None) -> HDInsightAttachConfiguration:
        warn_unsupported("HDInsightCompute.attach_configuration", resource_id=resource_id)
        props = {"address": address, "ssh_port": ssh_port, "username": username, "password": password,
                 "private_key": _read_file(private_key_file, "private_key_file"),
                 "private_key_passphrase": private_key_passphrase}
        return HDInsightAttachConfiguration("spark", props)


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
        warn_unsupported("BatchCompute.attach_configuration", resource_group=resource_group,
                         account_name=account_name, resource_id=resource_id)
        props = {"address": address, "ssh_port": ssh_port, "username": username, "password": password,
                 "private_key": _read_file(private_key_file, "private_key_file"), "rest_url": rest_url,
                 "jwt": jwt, "partition": partition, "account": account, "qos": qos,
                 "lowpriority_qos": lowpriority_qos, "slurm_conf": slurm_conf}
        return BatchAttachConfiguration("slurm", props)


class DatabricksCompute(_Attached):
    """An Azure Databricks workspace (type ``databricks``; not supported by the server yet)."""
    _paddock_type = "databricks"
    _azure_type = "Databricks"

    @staticmethod
    def attach_configuration(resource_group: Optional[str] = None, workspace_name: Optional[str] = None,
                             resource_id: Optional[str] = None, access_token: str = "", *,
                             workspace_url: Optional[str] = None) -> DatabricksAttachConfiguration:
        warn_unsupported("DatabricksCompute.attach_configuration", resource_group=resource_group,
                         resource_id=resource_id)
        url = workspace_url or (("https://%s.azuredatabricks.net" % workspace_name) if workspace_name else None)
        return DatabricksAttachConfiguration("databricks", {"workspace_url": url, "access_token": access_token})


class KubernetesCompute(_Attached):
    """A namespace of a Kubernetes cluster (Azure ML's Kubernetes compute): runs become Jobs whose pods run the
    Paddock agent; clusters with ``provider="kubernetes"`` get their nodes as pods. See docs/kubernetes.md."""
    _paddock_type = "kubernetes"
    _azure_type = "Kubernetes"
    _status_class = KubernetesComputeStatus

    @staticmethod
    def attach_configuration(resource_id: Optional[str] = None, namespace: Optional[str] = None,
                             identity_type: Optional[str] = None, identity_ids: Optional[List[str]] = None, *,
                             kubeconfig_file: Optional[str] = None, kubeconfig: Optional[str] = None,
                             context: Optional[str] = None, instance_types: Optional[Dict[str, Any]] = None,
                             image: Optional[str] = None, server_url: Optional[str] = None,
                             lowpriority_priority_class: Optional[str] = None,
                             lowpriority_tolerations: Optional[List[str]] = None,
                             description: Optional[str] = None, tags: Optional[Dict[str, str]] = None
                             ) -> KubernetesAttachConfiguration:
        """Azure ML's parameters where they mean something here (``namespace``); the cluster is named by a
        kubeconfig (``kubeconfig_file``, or its content as ``kubeconfig``) instead of an Azure resource id.
        ``instance_types`` maps names to ``{"cpu": "4", "memory": "16Gi", "gpu": 1, "node_selector": {...}}``."""
        warn_unsupported("KubernetesCompute.attach_configuration", resource_id=resource_id,
                         identity_type=identity_type, identity_ids=identity_ids)
        if kubeconfig is not None and kubeconfig_file is not None:
            raise ComputeTargetException("give kubeconfig_file or kubeconfig, not both", code="Invalid",
                                         field="kubeconfig")
        content = kubeconfig if kubeconfig is not None else _read_file(kubeconfig_file, "kubeconfig_file")
        if not content:
            raise ComputeTargetException(
                "KubernetesCompute.attach_configuration needs kubeconfig_file (a kubeconfig with a token or "
                "client certificate; docs/kubernetes.md makes one); Azure resource ids have no meaning to Paddock",
                code="Invalid", field="kubeconfig")
        return KubernetesAttachConfiguration("kubernetes", {
            "kubeconfig": content, "context": context, "namespace": namespace, "instance_types": instance_types,
            "image": image, "server_url": server_url, "lowpriority_priority_class": lowpriority_priority_class,
            "lowpriority_tolerations": lowpriority_tolerations, "description": description, "tags": tags})

    @property
    def namespace(self) -> Optional[str]:
        return self.properties.get("namespace")

    @property
    def instance_types(self) -> Dict[str, Any]:
        return dict(self.properties.get("instance_types") or {})

    def get_status(self) -> "KubernetesComputeStatus":  # type: ignore[override]
        return super().get_status()  # type: ignore[return-value]


_CLASSES: Dict[str, Type[ComputeTarget]] = {
    c._paddock_type: c for c in (LocalCompute, AmlCompute, ComputeInstance, RemoteCompute, HDInsightCompute,
                                 BatchCompute, DatabricksCompute, KubernetesCompute)  # type: ignore[misc]
}


def _class_for(type_: str) -> Type[ComputeTarget]:
    return _CLASSES.get(type_, ComputeTarget)


def _compute_path(ws: Workspace, name: str) -> str:
    return ws._path("/computes/" + quote(name, safe=""))


def _get(ws: Workspace, name: str) -> Dict[str, Any]:
    if not isinstance(ws, Workspace):
        raise ComputeTargetException("workspace must be a paddock.Workspace, not %s" % type(ws).__name__)
    if not name or ":" in name or "/" in name:
        raise ComputeTargetException("compute target %r not found in workspace %r" % (name, ws.name),
                                     code="NotFound", status=404)
    return ws._client.call("GET", _compute_path(ws, name), exc=ComputeTargetException)


def _post(ws: Workspace, name: str, type_: str, props: Dict[str, Any]) -> ComputeTarget:
    doc = ws._client.call("POST", ws._path("/computes"), body={"name": name, "type": type_, "properties": props},
                          exc=ComputeTargetException)
    return ComputeTarget._wrap(ws, doc)


_unused = (Union, PaddockException, T)
