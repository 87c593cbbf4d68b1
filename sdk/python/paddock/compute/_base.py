"""What every compute target shares: the ComputeTarget base, configurations, status objects and the
registry of kinds. Each kind lives in a module of its own (``amlcompute``, ``computeinstance``, ``remote`` …)
and registers itself with :func:`register`, as the server's kinds do in internal/compute."""
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type, TypeVar
from urllib.parse import quote

from .._compat import warn_unsupported
from ..exceptions import ComputeTargetException
from ..workspace import Workspace

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


class _Status:
    """A target's status as of its last refresh; ``serialize()`` gives Azure ML's camelCase keys."""

    # (attribute, Azure ML's key) pairs serialize() writes, base first; subclasses add theirs
    _keys: Tuple[Tuple[str, str], ...] = (
        ("provisioning_state", "provisioningState"), ("provisioning_errors", "provisioningErrors"),
        ("creation_time", "creationTime"), ("modified_time", "modifiedTime"), ("created_by", "createdBy"))

    def __init__(self, target: "ComputeTarget") -> None:
        d = target._doc
        self.provisioning_state: Optional[str] = d.get("provisioning_state")
        self.provisioning_errors: List[Dict[str, Any]] = list(d.get("provisioning_errors") or [])
        self.creation_time: Optional[str] = d.get("created_at")
        self.modified_time: Optional[str] = d.get("updated_at")
        self.created_by: Optional[str] = d.get("created_by")
        self._raw: Dict[str, Any] = dict(d.get("status") or {})

    def serialize(self) -> Dict[str, Any]:
        """The status as a dict with Azure ML's keys (``currentNodeCount``, ``nodeStateCounts`` …)."""
        out: Dict[str, Any] = {}
        for cls in reversed(type(self).__mro__):
            for attr, key in cls.__dict__.get("_keys", ()):
                v = getattr(self, attr, None)
                ser = getattr(v, "serialize", None)
                out[key] = ser() if callable(ser) else v
        return out

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.serialize())


class NodeStateCounts:
    """How many of a cluster's nodes are in each state."""

    def __init__(self, counts: Dict[str, int]) -> None:
        self.idle_node_count = int(counts.get("idle", 0))
        self.running_node_count = int(counts.get("running", 0))
        self.preparing_node_count = int(counts.get("preparing", 0))
        self.unusable_node_count = int(counts.get("unusable", 0))
        self.leaving_node_count = int(counts.get("leaving", 0))
        self.preempted_node_count = int(counts.get("preempted", 0))

    def serialize(self) -> Dict[str, int]:
        """The counts with Azure ML's keys."""
        return {"idleNodeCount": self.idle_node_count, "runningNodeCount": self.running_node_count,
                "preparingNodeCount": self.preparing_node_count, "unusableNodeCount": self.unusable_node_count,
                "leavingNodeCount": self.leaving_node_count, "preemptedNodeCount": self.preempted_node_count}

    def __repr__(self) -> str:
        return "NodeStateCounts(%r)" % self.serialize()


class ComputeTarget:
    """A compute target of a workspace (Azure ML's ``ComputeTarget``).

    ``ComputeTarget(workspace=ws, name=N)`` looks the target up and returns the
    object of its type (``AmlCompute``, ``ComputeInstance``, ``RemoteCompute``
    …); it raises ``ComputeTargetException`` when there is none.
    """

    _paddock_type: Optional[str] = None  # the server's type this class stands for
    _azure_type = "ComputeTarget"
    _status_class: Type[_Status] = _Status

    def __new__(cls, workspace: Optional[Workspace] = None, name: Optional[str] = None, *args: Any,
                **kw: Any) -> "ComputeTarget":
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
        """The target's name."""
        return str(self._doc.get("name", ""))

    @property
    def type(self) -> str:
        """The Azure ML spelling of the type (``AmlCompute``, ``ComputeInstance``, ``VirtualMachine`` …)."""
        return self._azure_type

    @property
    def paddock_type(self) -> str:
        """The server's type: ``cluster``, ``instance``, ``remote`` or ``local``."""
        return str(self._doc.get("type", ""))

    @property
    def provisioning_state(self) -> Optional[str]:
        """Creating, Succeeded, Failed, Updating, Deleting or Canceled."""
        return self._doc.get("provisioning_state")

    @property
    def provisioning_errors(self) -> List[Dict[str, Any]]:
        """The provisioning errors, each ``{code, message}``."""
        return list(self._doc.get("provisioning_errors") or [])

    @property
    def properties(self) -> Dict[str, Any]:
        """The target's type-specific properties (secrets omitted)."""
        return dict(self._doc.get("properties") or {})

    @property
    def status(self) -> _Status:
        """The status as of the last refresh (``get_status()`` refreshes)."""
        return self._status_class(self)

    @property
    def tags(self) -> Dict[str, str]:
        """The target's tags."""
        return dict(self.properties.get("tags") or {})

    @property
    def description(self) -> Optional[str]:
        """The target's description."""
        return self.properties.get("description")

    @property
    def created_by(self) -> Optional[str]:
        """The user who made the target."""
        return self._doc.get("created_by")

    @property
    def created_on(self) -> Optional[str]:
        """When the target was made (RFC 3339)."""
        return self._doc.get("created_at")

    @property
    def modified_on(self) -> Optional[str]:
        """When the target last changed (RFC 3339)."""
        return self._doc.get("updated_at")

    @property
    def location(self) -> Optional[str]:
        """Always None: a self-hosted server has no Azure region."""
        return None

    @property
    def cluster_resource_id(self) -> str:
        """The target's URL-like id: server/workspaces/NAME/computes/NAME."""
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
        """Attaches an existing machine or scheduler. A kind the server does not offer (yet) raises
        ``ComputeTargetException`` saying so and what to use instead."""
        cfg = attach_configuration
        if not isinstance(cfg, ComputeTargetAttachConfiguration):
            raise ComputeTargetException("ComputeTarget.attach needs an attach configuration "
                                         "(e.g. RemoteCompute.attach_configuration)")
        cfg.validate_configuration()
        try:
            return _post(workspace, name, cfg._type, cfg._properties())
        except ComputeTargetException as e:
            unoffered = getattr(cfg, "_not_offered", None)
            if unoffered and e.field == "type":
                raise not_offered(*unoffered) from None
            raise

    @staticmethod
    def list(workspace: Workspace) -> List["ComputeTarget"]:
        """Every target of the workspace, ``local`` included."""
        doc = workspace._client.call("GET", workspace._path("/computes"), exc=ComputeTargetException)
        return [ComputeTarget._wrap(workspace, d) for d in (doc or {}).get("items") or []]

    @staticmethod
    def deserialize(workspace: Workspace, object_dict: Dict[str, Any]) -> "ComputeTarget":
        """A target from what ``serialize`` returned."""
        doc = object_dict.get("paddock") or object_dict
        return ComputeTarget._wrap(workspace, doc)

    # -- instance methods ------------------------------------------------
    def refresh_state(self) -> None:
        """Reads the target's document from the server again."""
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

    def get_active_runs(self, type: Optional[str] = None, tags: Any = None, properties: Any = None,
                        status: Optional[str] = None) -> Iterator[Any]:
        """The target's runs that have not ended, newest first (``status`` picks one status)."""
        from ..experiment import Experiment
        from ..run import Run, _tags_match
        warn_unsupported("get_active_runs", type=type, properties=properties)
        for d in self.workspace._list_runs(compute=self.name):
            if d.get("status") in ("Completed", "Failed", "Canceled") or (status and d.get("status") != status):
                continue
            if tags and not _tags_match(d.get("tags") or {}, tags):
                continue
            yield Run._from_doc(Experiment(self.workspace, d.get("experiment") or "default"), d)

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


class _Attached(ComputeTarget):
    """An attached target: detached with ``detach()``, never deleted."""

    def delete(self, force: bool = False) -> None:
        """Attached targets are detached, not deleted: raises ``ComputeTargetException``."""
        raise ComputeTargetException("delete is not supported for an attached %s; use detach()" % self._azure_type,
                                     code="Invalid")


def _ssh_props(where: str, username: str, address: Optional[str], ssh_port: int, password: Optional[str],
               private_key_file: Optional[str], private_key_passphrase: Optional[str], resource_id: Optional[str],
               **azure_only: Any) -> Dict[str, Any]:
    """The properties of a target reached over SSH, from Azure ML's attach parameters: ``resource_id`` and
    the other Azure-only ones are ignored with one warning; ``address`` is required."""
    warn_unsupported(where, resource_id=resource_id, **azure_only)
    if not address:
        raise ComputeTargetException(
            "%s needs address (a host name or IP address reachable over SSH); Azure resource ids have no "
            "meaning to Paddock" % where, code="Invalid", field="address")
    return {"address": address, "ssh_port": ssh_port, "username": username, "password": password or None,
            "private_key": _read_file(private_key_file, "private_key_file"),
            "private_key_passphrase": private_key_passphrase or None}


def not_offered(what: str, instead: str) -> ComputeTargetException:
    """The exception for an Azure service Paddock does not offer: names it and says what to use instead."""
    return ComputeTargetException("Paddock does not offer %s; %s" % (what, instead), code="NotSupported")


_CLASSES: Dict[str, Type[ComputeTarget]] = {}

C = TypeVar("C", bound=Type[ComputeTarget])


def register(cls: C) -> C:
    """Registers a kind's class for the server's type it stands for (its ``_paddock_type``), so that
    ``ComputeTarget(ws, name)`` returns an object of that class."""
    if cls._paddock_type:
        _CLASSES[cls._paddock_type] = cls
    return cls


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
    doc: Dict[str, Any] = ws._client.call("GET", _compute_path(ws, name), exc=ComputeTargetException)
    return doc


def _post(ws: Workspace, name: str, type_: str, props: Dict[str, Any]) -> ComputeTarget:
    doc = ws._client.call("POST", ws._path("/computes"), body={"name": name, "type": type_, "properties": props},
                          exc=ComputeTargetException)
    return ComputeTarget._wrap(ws, doc)

