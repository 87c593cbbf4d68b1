"""Runs (was ``azureml.core.Run``)."""
import io
import json
import math
import os
import posixpath
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from typing import Any, Dict, List, Optional, TextIO, Union
from urllib.parse import quote

from ._http import Client
from .exceptions import ActivityFailedException, PaddockException, RunException
from .workspace import Workspace

__all__ = ["Run", "get_identity_credential"]

TERMINAL = ("Completed", "Failed", "Canceled")


class Run:
    """A submitted run; ``Run.get_context()`` inside a run's script gives the run itself."""

    def __init__(self, experiment: Any, run_id: str, outputs: Any = None, **kwargs: Any) -> None:
        self.experiment = experiment
        self._id = run_id
        self._doc: Dict[str, Any] = {}
        if kwargs.get("_doc") is not None:
            self._doc = kwargs["_doc"]
        else:
            self._refresh()

    @classmethod
    def _from_doc(cls, experiment: Any, doc: Dict[str, Any]) -> "Run":
        return cls(experiment, doc["id"], _doc=doc)

    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> "Run":
        from .experiment import Experiment
        doc = workspace._client.call("GET", workspace._path("/runs/" + quote(run_id, safe="")), exc=RunException)
        return cls._from_doc(Experiment(workspace, doc.get("experiment") or "default"), doc)

    @staticmethod
    def get_context(allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any) -> "Run":
        """Inside a run (PADDOCK_RUN_ID, PADDOCK_API_URL, PADDOCK_RUN_TOKEN set): the run, logging with the run's
        token. Elsewhere an offline run whose ``log`` does nothing harmful (values are kept in memory)."""
        rid, url, tok = (os.environ.get("PADDOCK_RUN_ID"), os.environ.get("PADDOCK_API_URL"),
                         os.environ.get("PADDOCK_RUN_TOKEN"))
        if rid and url and tok:
            return _ContextRun(rid, url, tok, os.environ.get("PADDOCK_WORKSPACE") or "default",
                               os.environ.get("PADDOCK_EXPERIMENT") or "default")
        if not allow_offline:
            raise RunException("not inside a Paddock run (PADDOCK_RUN_ID is not set)")
        return _OfflineRun()

    # -- plumbing --------------------------------------------------------
    @property
    def _ws(self) -> Workspace:
        return self.experiment.workspace

    @property
    def _client(self) -> Client:
        return self._ws._client

    def _path(self, suffix: str = "") -> str:
        return self._ws._path("/runs/" + quote(self._id, safe="") + suffix)

    def _refresh(self, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        self._doc = self._client.call("GET", self._path(), query=query, exc=RunException, timeout=timeout)
        return self._doc

    # -- attributes ------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def status(self) -> Optional[str]:
        return self._doc.get("status")

    @property
    def display_name(self) -> str:
        return self._id

    def get_status(self) -> str:
        """Queued, Provisioning, Starting, Preparing, Running, Finalizing, Completed, Failed or Canceled."""
        return self._refresh().get("status", "")

    def get_details(self) -> Dict[str, Any]:
        """The server's run document plus Azure ML's keys (runId, target, status, startTimeUtc …)."""
        d = dict(self._refresh())
        d.update({"runId": d.get("id"), "target": d.get("compute"), "startTimeUtc": d.get("started_at"),
                  "endTimeUtc": d.get("ended_at"), "properties": {}, "inputDatasets": [], "outputDatasets": []})
        if d.get("error"):
            d["error_details"] = {"error": {"message": d.get("error"), "code": d.get("status_reason")}}
        return d

    def get_metrics(self, name: Optional[str] = None, recursive: bool = False, run_type: Any = None,
                    populate: bool = False) -> Dict[str, Any]:
        """Logged metrics by name: a single value, or the list of values when a name was logged more than once."""
        doc = self._client.call("GET", self._path("/metrics"), exc=RunException)
        grouped: Dict[str, List[Any]] = {}
        for m in (doc or {}).get("items") or []:
            grouped.setdefault(m["name"], []).append(m["value"])
        out = {k: (v[0] if len(v) == 1 else v) for k, v in grouped.items()}
        if name is not None:
            return {name: out[name]} if name in out else {}
        return out

    def log(self, name: str, value: Any, description: str = "", step: Optional[int] = None) -> None:
        """Posts one metric value."""
        self._post_metrics([{"name": name, "value": value, "step": step}])

    def log_list(self, name: str, value: List[Any], description: str = "") -> None:
        self._post_metrics([{"name": name, "value": v, "step": i} for i, v in enumerate(value)])

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        clean = []
        for it in items:
            try:
                v = float(it["value"])
            except (TypeError, ValueError):
                raise RunException("metric %s: value %r is not a number" % (it["name"], it["value"])) from None
            if not math.isfinite(v):
                raise RunException("metric %s: value %r is not finite" % (it["name"], it["value"]))
            d = {"name": str(it["name"]), "value": v}
            if it.get("step") is not None:
                d["step"] = int(it["step"])
            clean.append(d)
        self._client.call("POST", self._path("/metrics"), body={"metrics": clean}, exc=RunException)

    def get_file_names(self) -> List[str]:
        return ["outputs/" + o["path"] for o in (self._refresh().get("outputs") or [])]

    def _outputs_tar(self) -> tarfile.TarFile:
        data = self._client.raw("GET", self._path("/outputs"), exc=RunException, timeout=300)
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")

    def download_files(self, prefix: Optional[str] = None, output_directory: Optional[str] = None,
                       output_paths: Optional[List[str]] = None, batch_size: int = 100,
                       append_prefix: bool = True, timeout_seconds: Optional[int] = None) -> List[str]:
        """Downloads the run's outputs as ``<output_directory>/outputs/<path>`` (``append_prefix=False``: without
        ``outputs/``). ``prefix`` (e.g. ``outputs/models``) limits what is fetched. Returns the local paths."""
        dest_root = os.path.abspath(os.path.expanduser(output_directory or os.getcwd()))
        want = (prefix or "").strip("/")
        written: List[str] = []
        with self._outputs_tar() as tf:
            for m in tf.getmembers():
                if not m.isreg():
                    continue
                rel = posixpath.normpath(m.name.lstrip("./") if m.name.startswith("./") else m.name)
                if rel.startswith("../") or rel == ".." or posixpath.isabs(rel):
                    continue
                name = "outputs/" + rel
                if want and not (name == want or name.startswith(want + "/")):
                    continue
                if output_paths is not None and name not in output_paths:
                    continue
                local = os.path.join(dest_root, *(name if append_prefix else rel).split("/"))
                if not os.path.abspath(local).startswith(dest_root + os.sep):
                    continue
                os.makedirs(os.path.dirname(local), exist_ok=True)
                src = tf.extractfile(m)
                if src is None:
                    continue
                with src, open(local, "wb") as f:
                    f.write(src.read())
                written.append(local)
        return written

    def download_file(self, name: str, output_file_path: Optional[str] = None) -> str:
        """Downloads one output (``outputs/<path>``) to output_file_path (default: its base name)."""
        rel = name[len("outputs/"):] if name.startswith("outputs/") else name
        with self._outputs_tar() as tf:
            for m in tf.getmembers():
                if m.isreg() and posixpath.normpath(m.name) == rel:
                    target = output_file_path or posixpath.basename(rel)
                    if os.path.isdir(target):
                        target = os.path.join(target, posixpath.basename(rel))
                    src = tf.extractfile(m)
                    assert src is not None
                    with src, open(target, "wb") as f:
                        f.write(src.read())
                    return target
        raise RunException("run %s has no output %s" % (self._id, name), code="NotFound", status=404)

    def get_identity_credential(self, identity: Optional[str] = None) -> Dict[str, Any]:
        """A credential of one of the run's managed identities, from PADDOCK_IDENTITY_ENDPOINT: ``secrets``
        (KEY: VALUE), ``token`` (an identity token, pdi_...), ``principal_id`` and ``expires_on``. ``identity`` names
        one when the run holds several. Good until ``expires_on`` and only while the run runs: ask again."""
        return get_identity_credential(identity)

    def cancel(self) -> None:
        self._doc = self._client.call("POST", self._ws._path("/runs/%s:cancel" % quote(self._id, safe="")),
                                      exc=RunException)

    def get_logs(self) -> List[Dict[str, Any]]:
        return list(self._client.lines(self._path("/logs"), exc=RunException))

    def _stream_logs(self, out: TextIO, deadline: Optional[float]) -> None:
        after = 0
        while True:
            try:
                for line in self._client.lines(self._path("/logs"), query={"after": after, "follow": True},
                                               timeout=60, exc=RunException):
                    after = max(after, int(line.get("seq") or 0))
                    prefix = "[rank %d] " % line["rank"] if line.get("rank") else ""
                    out.write(prefix + str(line.get("text", "")) + "\n")
                    out.flush()
            except (PaddockException, OSError):
                pass
            if self._refresh().get("status") in TERMINAL:
                # the stream ends once the run ended and every line was sent; take any stragglers
                try:
                    for line in self._client.lines(self._path("/logs"), query={"after": after}, exc=RunException):
                        out.write(str(line.get("text", "")) + "\n")
                except PaddockException:
                    pass
                return
            if deadline is not None and time.monotonic() > deadline:
                return

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the run to end (streaming its log with ``show_output``); returns ``get_details()``.
        A Failed or Canceled run raises ActivityFailedException (unless ``raise_on_error=False``)."""
        deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
        out = sys.stdout
        if show_output:
            out.write("RunId: %s\n" % self._id)
            # No "Web View" link: the API's URL needs a token a browser does not send, and the
            # server has no web page for a run yet. The CLI shows the same details.
            out.write("Details: paddock run show %s\n\nStreaming log:\n" % self._id)
            out.flush()
            self._stream_logs(out, deadline)
        while self.status not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise RunException("timed out after %gs waiting for run %s (status %s)"
                                   % (timeout_seconds, self._id, self.status), code="Timeout")
            self._refresh(query={"watch": self.status, "timeout_ms": 10000}, timeout=30)
        details = self.get_details()
        if show_output:
            out.write("\nExecution Summary\n=================\nRunId: %s\nStatus: %s\n" % (self._id, self.status))
            if details.get("error"):
                out.write("Error: %s\n" % details["error"])
            out.flush()
        if raise_on_error and self.status in ("Failed", "Canceled"):
            msg = "run %s ended %s" % (self._id, self.status)
            if details.get("error"):
                msg += ": " + str(details["error"])
            elif details.get("exit_code") is not None:
                msg += " (exit code %s)" % details["exit_code"]
            raise ActivityFailedException(msg, run_details=details, code=self.status)
        return details

    def __repr__(self) -> str:
        return "Run(Experiment: %s, Id: %s, Type: paddock, Status: %s)" % (
            getattr(self.experiment, "name", None), self._id, self.status)


class _ContextRun(Run):
    """The run a script is part of, logging with PADDOCK_RUN_TOKEN. Metric failures become warnings, so a
    training script is never stopped by logging."""

    def __init__(self, run_id: str, url: str, token: str, workspace: str, experiment: str) -> None:
        from .experiment import Experiment
        ws = Workspace(server=url, token=token, workspace=workspace)
        self.experiment = Experiment(ws, experiment)
        self._id = run_id
        self._doc = {"id": run_id, "status": "Running"}

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        try:
            super()._post_metrics(items)
        except PaddockException as e:
            warnings.warn("paddock: could not log metric(s) %s: %s" % (", ".join(i["name"] for i in items), e),
                          RuntimeWarning, stacklevel=3)


class _OfflineRun(Run):
    """Outside a run: ``log`` keeps values in memory and prints nothing; nothing touches a server."""

    def __init__(self) -> None:
        self.experiment = None
        self._id = "OfflineRun_" + str(uuid.uuid4())
        self._doc = {"id": self._id, "status": "Running"}
        self._metrics: Dict[str, List[Any]] = {}

    def _refresh(self, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        return self._doc

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        for it in items:
            self._metrics.setdefault(it["name"], []).append(it["value"])

    def get_metrics(self, name: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:  # type: ignore[override]
        out = {k: (v[0] if len(v) == 1 else v) for k, v in self._metrics.items()}
        return {name: out[name]} if name is not None and name in out else ({} if name is not None else out)

    def cancel(self) -> None:
        pass

    def wait_for_completion(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        return dict(self._doc)


_unused = Union


def get_identity_credential(identity: Optional[str] = None) -> Dict[str, Any]:
    """Inside a run on a cluster with a managed identity: a credential of the identity (see
    ``Run.get_identity_credential``). Raises ``RunException`` outside such a run or when refused."""
    endpoint, token = os.environ.get("PADDOCK_IDENTITY_ENDPOINT"), os.environ.get("PADDOCK_IDENTITY_TOKEN")
    if not endpoint or not token:
        raise RunException("this run holds no managed identity (PADDOCK_IDENTITY_ENDPOINT is not set): give its "
                           "cluster one with identity_type/identity_id or add_identity")
    url = endpoint + ("?" + urllib.parse.urlencode({"identity": identity}) if identity else "")
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read().decode("utf-8"))["error"]["message"]
        except Exception:  # noqa: BLE001 - not the endpoint's JSON
            msg = str(e)
        raise RunException("the identity endpoint refused: %s" % msg) from None
