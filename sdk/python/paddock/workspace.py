"""The workspace: one Paddock server and one workspace on it."""
import json
import os
import uuid
import warnings
from typing import Any, Dict, List, Optional

from ._compat import warn_unsupported
from ._http import CA_FILE_ENV, Client, ssl_context
from .exceptions import WorkspaceException

__all__ = ["Workspace"]

DEFAULT_SERVER = "http://127.0.0.1:8765"
DEFAULT_WORKSPACE = "default"


def _default_config_path() -> str:
    return os.environ.get("PADDOCK_CONFIG") or os.path.join(os.path.expanduser("~"), ".paddock", "config")


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise WorkspaceException("cannot read the Paddock config %s: %s" % (path, e.strerror or e)) from None
    except ValueError as e:
        raise WorkspaceException("the Paddock config %s is not valid JSON: %s" % (path, e)) from None
    if not isinstance(doc, dict):
        raise WorkspaceException("the Paddock config %s is not a JSON object" % path)
    return doc


def _same_server(a: Any, b: Any) -> bool:
    return bool(a) and bool(b) and str(a).rstrip("/").lower() == str(b).rstrip("/").lower()


def _find_config_json(start: str) -> Optional[str]:
    """Looks for a config.json with a "server" key in start and its parents
    (also in .paddock/ and .azureml/ below them), as Azure ML's from_config does."""
    d = os.path.abspath(start)
    while True:
        for cand in (os.path.join(d, "config.json"), os.path.join(d, ".paddock", "config.json"),
                     os.path.join(d, ".azureml", "config.json")):
            if os.path.isfile(cand):
                try:
                    with open(cand, "r", encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    continue
                if isinstance(doc, dict) and doc.get("server"):
                    return cand
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


class Workspace:
    """A Paddock workspace (Azure ML's ``Workspace``).

    ``Workspace(server=..., token=..., workspace_name=...)`` names it directly;
    ``Workspace.from_config()`` reads ``~/.paddock/config`` (``PADDOCK_CONFIG``
    overrides the path) or a ``config.json``. The Azure-only arguments
    (``subscription_id``, ``resource_group`` …) are accepted and ignored with a
    warning so that ported scripts run.

    For an ``https://`` server it trusts, and trusts alone, the CA in ``ca_file``, else in
    ``$PADDOCK_CA_FILE`` (set inside runs), else the ``"ca"`` of the config when the config names the
    same server; with none of them, the system's roots.
    """

    def __init__(self, subscription_id: Optional[str] = None, resource_group: Optional[str] = None,
                 workspace_name: Optional[str] = None, auth: Any = None, _location: Optional[str] = None,
                 _disable_service_check: bool = False, _workspace_id: Optional[str] = None,
                 sku: str = "basic", *, server: Optional[str] = None, token: Optional[str] = None,
                 workspace: Optional[str] = None, timeout: float = 60.0, ca_file: Optional[str] = None,
                 _config: Optional[Dict[str, Any]] = None) -> None:
        warn_unsupported("Workspace", subscription_id=subscription_id, resource_group=resource_group,
                         auth=auth, _location=_location)
        name = workspace or workspace_name
        cfg: Dict[str, Any] = _config or {}
        if server is None or token is None or name is None:
            path = _default_config_path()
            if _config is None and os.path.isfile(path):
                cfg = _read_json(path)
            server = server or os.environ.get("PADDOCK_SERVER") or cfg.get("server") or DEFAULT_SERVER
            token = token if token is not None else (os.environ.get("PADDOCK_TOKEN") or cfg.get("token"))
            name = name or os.environ.get("PADDOCK_WORKSPACE") or cfg.get("workspace") or DEFAULT_WORKSPACE
        self._server = str(server).rstrip("/")
        self._token = token
        self._name = str(name)
        self._ca_file = ca_file or os.environ.get(CA_FILE_ENV) or None
        self._ca_pem: Optional[str] = None
        if not self._ca_file and self._server.lower().startswith("https://"):
            if not cfg and _config is None:
                try:  # only for its "ca": a server named here may be the config's
                    path = _default_config_path()
                    cfg = _read_json(path) if os.path.isfile(path) else {}
                except WorkspaceException:
                    cfg = {}
            if isinstance(cfg.get("ca"), str) and _same_server(cfg.get("server"), self._server):
                self._ca_pem = cfg["ca"]
        self._client = Client(self._server, token, timeout=timeout,
                              context=ssl_context(self._ca_file, self._ca_pem, exc=WorkspaceException))
        self._workspace_id = _workspace_id or str(uuid.uuid5(uuid.NAMESPACE_URL, self._server + "/" + self._name))
        self.sku = sku

    # -- construction ----------------------------------------------------
    @classmethod
    def from_config(cls, path: Optional[str] = None, auth: Any = None, _logger: Any = None,
                    _file_name: Optional[str] = None) -> "Workspace":
        """Reads server, token and workspace from a JSON config file.

        ``path`` may be a file or a directory (searched for ``config.json``,
        ``.paddock/config.json``, ``.azureml/config.json``). Without it:
        ``$PADDOCK_CONFIG``, else a ``config.json`` with a ``server`` key in the
        working directory or its parents, else ``~/.paddock/config``. The
        environment variables ``PADDOCK_SERVER``/``PADDOCK_TOKEN``/
        ``PADDOCK_WORKSPACE`` override the file, as for the CLI.
        """
        warn_unsupported("Workspace.from_config", auth=auth)
        cfg_path: Optional[str] = None
        if path is not None:
            if os.path.isdir(path):
                cfg_path = _find_config_json(path) if _file_name is None else os.path.join(path, _file_name)
                if cfg_path is None:
                    raise WorkspaceException("no config.json with a \"server\" key found in %s" % path)
            else:
                cfg_path = path
        elif os.environ.get("PADDOCK_CONFIG"):
            cfg_path = os.environ["PADDOCK_CONFIG"]
        else:
            cfg_path = _find_config_json(os.getcwd())
            if cfg_path is None:
                cfg_path = os.path.join(os.path.expanduser("~"), ".paddock", "config")
        if not os.path.isfile(cfg_path):
            raise WorkspaceException(
                "no Paddock config at %s: run `paddock up` (it writes ~/.paddock/config), set PADDOCK_CONFIG, "
                "or pass server/token/workspace to Workspace()" % cfg_path)
        cfg = _read_json(cfg_path)
        server = os.environ.get("PADDOCK_SERVER") or cfg.get("server")
        if not server:
            raise WorkspaceException("the Paddock config %s has no \"server\"" % cfg_path)
        token = os.environ.get("PADDOCK_TOKEN") or cfg.get("token")
        name = (os.environ.get("PADDOCK_WORKSPACE") or cfg.get("workspace") or cfg.get("workspace_name")
                or DEFAULT_WORKSPACE)
        return cls(server=server, token=token, workspace=name, _config=cfg)

    @classmethod
    def get(cls, name: str, auth: Any = None, subscription_id: Optional[str] = None,
            resource_group: Optional[str] = None, **kwargs: Any) -> "Workspace":
        """Azure ML's ``Workspace.get``: the named workspace on the configured server."""
        return cls(subscription_id=subscription_id, resource_group=resource_group, workspace_name=name,
                   auth=auth, **kwargs)

    # -- properties ------------------------------------------------------
    @property
    def name(self) -> str:
        """The workspace's name."""
        return self._name

    @property
    def server(self) -> str:
        """The server's URL."""
        return self._server

    @property
    def service_url(self) -> str:
        """The server's URL (Azure ML's name for it)."""
        return self._server

    def _path(self, suffix: str = "") -> str:
        from urllib.parse import quote
        return "/api/v1/workspaces/%s%s" % (quote(self._name, safe=""), suffix)

    @property
    def compute_targets(self) -> Dict[str, Any]:
        """All compute targets of the workspace by name (the built-in ``local`` included)."""
        from .compute import ComputeTarget
        return {t.name: t for t in ComputeTarget.list(self)}

    @property
    def experiments(self) -> Dict[str, Any]:
        """The workspace's experiments by name (those with runs)."""
        from .experiment import Experiment
        names: List[str] = sorted({r.get("experiment", "default") for r in self._list_runs()})
        return {n: Experiment(self, n) for n in names}

    def _list_runs(self, compute: Optional[str] = None, limit: int = 100) -> List[Dict[str, Any]]:
        from .exceptions import ExperimentExecutionException
        doc = self._client.call("GET", self._path("/runs"), query={"compute": compute, "limit": limit},
                                exc=ExperimentExecutionException)
        return list((doc or {}).get("items") or [])

    def get_details(self) -> Dict[str, Any]:
        """name, id, server and the server's version."""
        version = None
        try:
            version = (self._client.call("GET", "/api/v1/version") or {}).get("version")
        except Exception:  # noqa: BLE001 - details are best effort
            pass
        return {"name": self._name, "id": self._workspace_id, "server": self._server, "version": version}

    def write_config(self, path: Optional[str] = None, file_name: Optional[str] = None) -> str:
        """Writes ``{server, token, workspace}`` (and ``ca``, the CA trusted for the server, when there is one)
        to ``path/.paddock/<file_name or config.json>``."""
        d = os.path.join(path or os.getcwd(), ".paddock")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, file_name or "config.json")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            doc = {"server": self._server, "token": self._token, "workspace": self._name}
            ca = self._ca_pem
            if ca is None and self._ca_file:
                with open(self._ca_file, "r", encoding="utf-8") as caf:
                    ca = caf.read()
            if ca:
                doc["ca"] = ca
            json.dump(doc, f, indent=2)
        return p

    def __repr__(self) -> str:
        return "Workspace.create(name='%s', server='%s')" % (self._name, self._server)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and (self._server, self._name) == (other._server, other._name)

    def __hash__(self) -> int:
        return hash((self._server, self._name))


_ = warnings  # re-exported for tests that patch warnings
