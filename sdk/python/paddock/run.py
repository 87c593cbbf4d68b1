"""Runs (was ``azureml.core.Run``): submitted runs, the run a script is part of (``Run.get_context()``) and
interactive runs (``Experiment.start_logging``)."""
import io
import json
import math
import mimetypes
import os
import posixpath
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, TextIO
from urllib.parse import quote

from ._compat import PaddockCompatibilityWarning, warn_unsupported
from ._http import Client
from .exceptions import ActivityFailedException, PaddockException, RunException
from .workspace import Workspace

if TYPE_CHECKING:  # the experiment module imports this one, not the other way round
    from .experiment import Experiment

__all__ = ["Run", "get_identity_credential"]

TERMINAL = ("Completed", "Failed", "Canceled")

LOG_FILE = "logs/run.log"  # how get_file_names and get_details name the run's log (stdout and stderr)


def _experiment(workspace: Workspace, name: str) -> "Experiment":
    from .experiment import Experiment  # at call time: experiment imports run
    return Experiment(workspace, name)


def _metric_item(name: str, value: Any, step: Optional[int] = None) -> Dict[str, Any]:
    """One metric of a post: a number, a string, or any other JSON value (kind json)."""
    d: Dict[str, Any] = {"name": str(name)}
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple, dict)):
        d.update(kind="json", data=value)
    elif isinstance(value, str):
        d.update(kind="string", text=value)
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise RunException("metric %s: value %r is not a number, a string or a JSON value" % (name, value),
                               field="value") from None
        if not math.isfinite(v):
            raise RunException("metric %s: value %r is not finite" % (name, value), field="value")
        d["value"] = v
    if step is not None:
        d["step"] = int(step)
    return d


def _metric_value(m: Dict[str, Any]) -> Any:
    """A logged metric's value as Azure ML gives it back."""
    kind = m.get("kind") or ""
    if kind in ("string", "image"):
        return m.get("text", "")
    if kind in ("row", "json"):
        return m.get("data")
    return m.get("value")


def _tags_match(have: Dict[str, str], want: Any) -> bool:
    """Azure ML's tag filter: a tag name, a list of names, or a dict of name → value."""
    if isinstance(want, str):
        return want in have
    if isinstance(want, dict):
        return all(have.get(k) == v for k, v in want.items())
    return all(k in have for k in want)


def _file_name(name: str) -> str:
    """A name safe as a run file's base name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"


class Run:
    """A run of an experiment (Azure ML's ``Run``).

    ``Run.get_context()`` inside a submitted script gives the run itself (logging with the run's own token);
    ``Experiment.submit`` and ``Experiment.start_logging`` give runs to follow and annotate from outside."""

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
        """The run with this id in the workspace."""
        doc = workspace._client.call("GET", workspace._path("/runs/" + quote(run_id, safe="")), exc=RunException)
        return cls._from_doc(_experiment(workspace, doc.get("experiment") or "default"), doc)

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
        return self.experiment.workspace  # type: ignore[no-any-return]

    @property
    def _client(self) -> Client:
        return self._ws._client

    def _path(self, suffix: str = "") -> str:
        return self._ws._path("/runs/" + quote(self._id, safe="") + suffix)

    def _refresh(self, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        self._doc = self._client.call("GET", self._path(), query=query, exc=RunException, timeout=timeout)
        return self._doc

    def _action(self, action: str, body: Optional[Dict[str, Any]] = None) -> None:
        self._doc = self._client.call("POST", self._ws._path("/runs/%s:%s" % (quote(self._id, safe=""), action)),
                                      body=body, exc=RunException) or self._doc

    # -- attributes ------------------------------------------------------
    @property
    def id(self) -> str:
        """The run's id."""
        return self._id

    @property
    def status(self) -> Optional[str]:
        """The status as of the last refresh (``get_status()`` refreshes)."""
        return self._doc.get("status")

    @property
    def display_name(self) -> str:
        """The run's id (Paddock runs have no separate display name)."""
        return self._id

    @property
    def tags(self) -> Dict[str, str]:
        """The run's tags as of the last refresh."""
        return dict(self._doc.get("tags") or {})

    def get_status(self) -> str:
        """Queued, Provisioning, Starting, Preparing, Running, Finalizing, Completed, Failed or Canceled."""
        return str(self._refresh().get("status", ""))

    def get_details(self) -> Dict[str, Any]:
        """The server's run document plus Azure ML's keys (runId, target, status, startTimeUtc, logFiles …)."""
        d = dict(self._refresh())
        d.update({"runId": d.get("id"), "target": d.get("compute"), "startTimeUtc": d.get("started_at"),
                  "endTimeUtc": d.get("ended_at"), "properties": {}, "inputDatasets": [], "outputDatasets": [],
                  "tags": dict(d.get("tags") or {}),
                  "logFiles": {LOG_FILE: self._client.url(self._path("/logs"))}})
        if d.get("error"):
            d["error_details"] = {"error": {"message": d.get("error"), "code": d.get("status_reason")}}
        return d

    # -- metrics ---------------------------------------------------------
    def get_metrics(self, name: Optional[str] = None, recursive: bool = False, run_type: Any = None,
                    populate: bool = False) -> Dict[str, Any]:
        """Logged metrics by name: a single value, or the list of values when a name was logged more than once;
        a table (``log_row``, ``log_table``) as a dict of column → list of values; an image as its file name."""
        doc = self._client.call("GET", self._path("/metrics"), exc=RunException)
        grouped: Dict[str, List[Dict[str, Any]]] = {}
        for m in (doc or {}).get("items") or []:
            grouped.setdefault(m["name"], []).append(m)
        out: Dict[str, Any] = {}
        for k, ms in grouped.items():
            if all(m.get("kind") == "row" for m in ms):
                cols: Dict[str, List[Any]] = {}
                for m in ms:
                    for c, v in (m.get("data") or {}).items():
                        cols.setdefault(c, []).append(v)
                out[k] = cols
            else:
                vals = [_metric_value(m) for m in ms]
                out[k] = vals[0] if len(vals) == 1 else vals
        if name is not None:
            return {name: out[name]} if name in out else {}
        return out

    def log(self, name: str, value: Any, description: str = "", step: Optional[int] = None) -> None:
        """Logs one value: a number, a string, or a list/dict/bool (kept as JSON)."""
        self._post_metrics([_metric_item(name, value, step)])

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Logs a list of values under one name (steps 0, 1, …); ``get_metrics`` gives the list back."""
        self._post_metrics([_metric_item(name, v, i) for i, v in enumerate(value)])

    def log_row(self, name: str, description: Optional[str] = None, **kwargs: Any) -> None:
        """Logs one row of a table: columns as keyword arguments (numbers, strings, booleans or None)."""
        if not kwargs:
            raise RunException("log_row %s: give the row's columns as keyword arguments" % name, field="data")
        self._post_metrics([{"name": name, "kind": "row", "data": kwargs}])

    def log_table(self, name: str, value: Dict[str, List[Any]], description: str = "") -> None:
        """Logs a table given as a dict of column → list of values (all lists of one length), row by row."""
        lengths = {len(v) for v in value.values()}
        if len(lengths) != 1:
            raise RunException("log_table %s: the columns must be lists of one length, not %s"
                               % (name, sorted(lengths)), field="data")
        n = lengths.pop()
        self._post_metrics([{"name": name, "kind": "row", "data": {c: v[i] for c, v in value.items()}}
                            for i in range(n)])

    def _log_json(self, name: str, value: Any) -> None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise RunException("metric %s: value is a string that is not JSON" % name, field="data") from None
        self._post_metrics([{"name": name, "kind": "json", "data": value}])

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """Logs a confusion matrix (a dict or its JSON text, as Azure ML's schema has it) as a JSON value."""
        self._log_json(name, value)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        """Logs an accuracy table (a dict or its JSON text) as a JSON value."""
        self._log_json(name, value)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        """Logs predictions (a dict or its JSON text) as a JSON value."""
        self._log_json(name, value)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        """Logs residuals (a dict or its JSON text) as a JSON value."""
        self._log_json(name, value)

    def log_image(self, name: str, path: Optional[str] = None, plot: Any = None, description: str = "") -> None:
        """Logs an image: a file (``path``) or a matplotlib figure or pyplot module (``plot``, saved as PNG).
        It is stored as the run's file ``outputs/images/<name>.<ext>`` and logged as an image metric."""
        if (path is None) == (plot is None):
            raise RunException("log_image %s: give exactly one of path and plot" % name, field="path")
        if path is not None:
            ext = os.path.splitext(path)[1] or ".png"
            target = "outputs/images/%s%s" % (_file_name(name), ext.lower())
            self.upload_file(target, path)
        else:
            buf = io.BytesIO()
            plot.savefig(buf, format="png")
            target = "outputs/images/%s.png" % _file_name(name)
            self.upload_file(target, buf)
        self._post_metrics([{"name": name, "kind": "image", "text": target}])

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        self._client.call("POST", self._path("/metrics"), body={"metrics": items}, exc=RunException)

    # -- tags ------------------------------------------------------------
    def tag(self, key: str, value: Optional[str] = None) -> None:
        """Sets one tag (value ``""`` when none is given, as Azure ML does)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: Dict[str, Any]) -> None:
        """Sets several tags; values become strings."""
        self._patch_tags({str(k): str(v) for k, v in tags.items()})

    def remove_tags(self, tags: Iterable[str]) -> None:
        """Removes tags by name."""
        self._patch_tags({str(k): None for k in tags})

    def get_tags(self) -> Dict[str, str]:
        """The run's tags."""
        return dict(self._refresh().get("tags") or {})

    def _patch_tags(self, tags: Dict[str, Optional[str]]) -> None:
        self._doc = self._client.call("PATCH", self._path(), body={"tags": tags}, exc=RunException) or self._doc

    # -- files -----------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: Any, datastore_name: Optional[str] = None) -> Dict[str, Any]:
        """Uploads a file (a path or a binary stream) as the run's file ``name`` (e.g. ``outputs/model.pkl``);
        ``get_file_names`` lists it and ``download_file(s)`` fetch it."""
        warn_unsupported("Run.upload_file", datastore_name=datastore_name)
        if isinstance(path_or_stream, (str, os.PathLike)):
            try:
                with open(os.path.expanduser(str(path_or_stream)), "rb") as f:
                    data = f.read()
            except OSError as e:
                raise RunException("upload_file %s: cannot read %s: %s" % (name, path_or_stream, e.strerror or e),
                                   field="path_or_stream") from None
        else:
            data = path_or_stream.read()
            if isinstance(data, str):
                data = data.encode("utf-8")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self._client.call_raw_json("PUT", self._path("/files/" + quote(name.lstrip("/"), safe="/")), data,
                                          ctype, exc=RunException, timeout=300) or {}

    def upload_files(self, names: List[str], paths: List[str], return_artifacts: bool = False,
                     timeout_seconds: Optional[int] = None, datastore_name: Optional[str] = None) -> Any:
        """Uploads several files: ``names[i]`` from ``paths[i]``."""
        if len(names) != len(paths):
            raise RunException("upload_files: names and paths must have one length (%d and %d)"
                               % (len(names), len(paths)), field="names")
        out = [self.upload_file(n, p, datastore_name=datastore_name) for n, p in zip(names, paths)]
        return out if return_artifacts else None

    def upload_folder(self, name: str, path: str, datastore_name: Optional[str] = None) -> None:
        """Uploads every file under the directory ``path`` as ``name/<relative path>``."""
        root = os.path.expanduser(path)
        for d, _, files in os.walk(root):
            for f in sorted(files):
                full = os.path.join(d, f)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self.upload_file(posixpath.join(name.rstrip("/"), rel), full, datastore_name=datastore_name)

    def get_file_names(self) -> List[str]:
        """The run's files: its log (``logs/run.log``), its outputs (``outputs/...``) and what was uploaded."""
        doc = self._client.call("GET", self._path("/files"), exc=RunException)
        return [LOG_FILE] + [f["path"] for f in (doc or {}).get("items") or []]

    def _fetch(self, name: str) -> bytes:
        if name == LOG_FILE:
            return "".join(str(line.get("text", "")) + "\n" for line in self.get_logs()).encode("utf-8")
        return self._client.raw("GET", self._path("/files/" + quote(name, safe="/")), exc=RunException, timeout=300)

    def download_files(self, prefix: Optional[str] = None, output_directory: Optional[str] = None,
                       output_paths: Optional[List[str]] = None, batch_size: int = 100,
                       append_prefix: bool = True, timeout_seconds: Optional[int] = None) -> List[str]:
        """Downloads the run's files as ``<output_directory>/<name>`` (``outputs/...``, ``logs/run.log`` and
        uploaded files). ``prefix`` (e.g. ``outputs/models``) limits what is fetched; ``append_prefix=False``
        leaves the prefix out of the local paths. Returns the local paths."""
        dest_root = os.path.abspath(os.path.expanduser(output_directory or os.getcwd()))
        want = (prefix or "").strip("/")
        written: List[str] = []
        for name in self.get_file_names():
            if want and not (name == want or name.startswith(want + "/")):
                continue
            if output_paths is not None and name not in output_paths:
                continue
            rel = name[len(want) + 1:] if (want and not append_prefix and name != want) else name
            local = os.path.abspath(os.path.join(dest_root, *rel.split("/")))
            if not local.startswith(dest_root + os.sep):
                continue
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "wb") as f:
                f.write(self._fetch(name))
            written.append(local)
        return written

    def download_file(self, name: str, output_file_path: Optional[str] = None,
                      _validate_checksum: bool = False) -> str:
        """Downloads one file (``outputs/<path>``, ``logs/run.log`` or an uploaded name) to output_file_path
        (default: its base name; a directory: that name inside it)."""
        names = self.get_file_names()
        if name not in names and "outputs/" + name in names:
            name = "outputs/" + name  # Paddock's older spelling: a path under outputs/
        if name not in names:
            raise RunException("run %s has no file %s" % (self._id, name), code="NotFound", status=404)
        target = output_file_path or posixpath.basename(name)
        if os.path.isdir(target):
            target = os.path.join(target, posixpath.basename(name))
        with open(target, "wb") as f:
            f.write(self._fetch(name))
        return target

    # -- lifecycle -------------------------------------------------------
    def get_identity_credential(self, identity: Optional[str] = None) -> Dict[str, Any]:
        """A credential of one of the run's managed identities, from PADDOCK_IDENTITY_ENDPOINT: ``secrets``
        (KEY: VALUE), ``token`` (an identity token, pdi_...), ``principal_id`` and ``expires_on``. ``identity`` names
        one when the run holds several. Good until ``expires_on`` and only while the run runs: ask again."""
        return get_identity_credential(identity)

    def cancel(self) -> None:
        """Cancels the run."""
        self._action("cancel")

    def complete(self, _set_status: bool = True) -> None:
        """Marks an interactive run (``Experiment.start_logging``) Completed."""
        self._action("complete")

    def fail(self, error_details: Any = None, error_code: Optional[str] = None, _set_status: bool = True) -> None:
        """Marks the run Failed, with ``error_details`` (text or an exception) as its error. From inside a
        submitted run the run ends Failed when its script exits, whatever its exit code."""
        msg = str(error_details) if error_details is not None else ""
        if error_code:
            msg = "%s: %s" % (error_code, msg) if msg else str(error_code)
        self._action("fail", {"error": msg} if msg else None)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Ends an interactive run: Completed, or Failed with the exception that left the ``with`` block."""
        if self._doc.get("status") in TERMINAL or not self._doc.get("interactive"):
            return
        if exc is not None:
            self.fail(error_details="%s: %s" % (exc_type.__name__, exc))
        else:
            self.complete()

    def get_logs(self) -> List[Dict[str, Any]]:
        """The run's log lines so far (``text``, ``stream``, ``rank``, ``seq`` …)."""
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
                                   % (timeout_seconds or 0, self._id, self.status), code="Timeout")
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
    """The run a script is part of, annotating it with PADDOCK_RUN_TOKEN. A failure to log, tag or upload
    becomes a warning, so a training script is never stopped by its bookkeeping."""

    def __init__(self, run_id: str, url: str, token: str, workspace: str, experiment: str) -> None:
        ws = Workspace(server=url, token=token, workspace=workspace)
        self.experiment = _experiment(ws, experiment)
        self._id = run_id
        self._doc = {"id": run_id, "status": "Running"}
        self._tags: Dict[str, str] = {}

    def _soft(self, what: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except PaddockException as e:
            warnings.warn("paddock: could not %s: %s" % (what, e), RuntimeWarning, stacklevel=4)
            return None

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        self._soft("log metric(s) %s" % ", ".join(str(i["name"]) for i in items), super()._post_metrics, items)

    def _patch_tags(self, tags: Dict[str, Optional[str]]) -> None:
        for k, v in tags.items():
            if v is None:
                self._tags.pop(k, None)
            else:
                self._tags[k] = v
        self._soft("set tag(s) %s" % ", ".join(tags), super()._patch_tags, tags)

    def get_tags(self) -> Dict[str, str]:
        """The tags this script set (a run's token may annotate its run, not read it)."""
        return dict(self._tags)

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: Optional[str] = None) -> Dict[str, Any]:
        """Uploads a file as the run's file ``name``; a failure is a warning."""
        out = self._soft("upload %s" % name, super().upload_file, name, path_or_stream, datastore_name)
        return out or {}

    def complete(self, _set_status: bool = True) -> None:
        """A submitted run completes when its script exits 0: nothing to do."""

    def fail(self, error_details: Any = None, error_code: Optional[str] = None, _set_status: bool = True) -> None:
        """Marks the run Failed: it ends Failed when the script exits, whatever its exit code."""
        self._soft("mark the run failed", super().fail, error_details, error_code)

    def _refresh(self, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        return self._doc  # a run's token may annotate its run, not read it


class _OfflineRun(Run):
    """Outside a run: metrics and tags are kept in memory, files are not kept; nothing touches a server."""

    def __init__(self) -> None:
        self.experiment = None
        self._id = "OfflineRun_" + str(uuid.uuid4())
        self._doc = {"id": self._id, "status": "Running"}
        self._metrics: Dict[str, List[Any]] = {}

    def _refresh(self, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        return self._doc

    def _post_metrics(self, items: List[Dict[str, Any]]) -> None:
        for it in items:
            self._metrics.setdefault(it["name"], []).append(_metric_value(it))

    def _patch_tags(self, tags: Dict[str, Optional[str]]) -> None:
        t = self._doc.setdefault("tags", {})
        for k, v in tags.items():
            if v is None:
                t.pop(k, None)
            else:
                t[k] = v

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: Optional[str] = None) -> Dict[str, Any]:
        """Offline: the file is not kept anywhere."""
        return {"path": name}

    def get_metrics(self, name: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:  # type: ignore[override]
        """The values logged in this process."""
        out = {k: (v[0] if len(v) == 1 else v) for k, v in self._metrics.items()}
        return {name: out[name]} if name is not None and name in out else ({} if name is not None else out)

    def _action(self, action: str, body: Optional[Dict[str, Any]] = None) -> None:
        self._doc["status"] = {"complete": "Completed", "fail": "Failed", "cancel": "Canceled"}.get(action, "Running")

    def wait_for_completion(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """Offline: returns at once."""
        return dict(self._doc)


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
            cred: Dict[str, Any] = json.loads(resp.read().decode("utf-8"))
            return cred
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read().decode("utf-8"))["error"]["message"]
        except Exception:  # noqa: BLE001 - not the endpoint's JSON
            msg = str(e)
        raise RunException("the identity endpoint refused: %s" % msg) from None
