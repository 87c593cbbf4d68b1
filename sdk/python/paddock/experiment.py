"""Experiments (was ``azureml.core.Experiment``)."""
import re
from typing import Any, Dict, Iterator, Optional
from urllib.parse import quote

from ._compat import warn_unsupported
from .exceptions import ExperimentExecutionException, UserErrorException
from .run import Run, _tags_match
from .workspace import Workspace

__all__ = ["Experiment"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class Experiment:
    """A named group of runs in a workspace."""

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        if not _NAME.match(name or ""):
            raise UserErrorException("experiment name %r must be 1 to 255 letters, digits, '_', '.' or '-', "
                                     "starting with a letter or digit" % name, field="experiment")
        self.workspace = workspace
        self.name = name

    def submit(self, config: Any, tags: Optional[Dict[str, str]] = None, **kwargs: Any) -> Run:
        """Uploads the source snapshot (if the server lacks it) and queues the run, with ``tags``; returns the
        Run."""
        from ._snapshot import pack
        from .script_run_config import ScriptRunConfig
        if not isinstance(config, ScriptRunConfig):
            raise UserErrorException("Experiment.submit takes a ScriptRunConfig, not %s" % type(config).__name__)
        ws = self.workspace
        client = ws._client
        body = config._submit_body()
        body["experiment"] = self.name
        if tags:
            body["tags"] = {str(k): str(v) for k, v in tags.items()}
        data, digest = pack(config.source_directory, include_sdk=config.include_sdk)
        if client.status_of("HEAD", ws._path("/snapshots/" + digest), exc=ExperimentExecutionException) != 200:
            ref = client.call_raw_json("PUT", ws._path("/snapshots"), data, "application/gzip",
                                       exc=ExperimentExecutionException)
            digest = (ref or {}).get("digest", digest)
        body["source"] = digest
        doc = client.call("POST", ws._path("/runs"), body=body, exc=ExperimentExecutionException)
        return Run._from_doc(self, doc)

    def start_logging(self, *args: Any, outputs: Optional[str] = None, snapshot_directory: Optional[str] = None,
                      tags: Optional[Dict[str, str]] = None, **kwargs: Any) -> Run:
        """Starts an interactive run: it runs nothing; this process logs to it and ends it with ``complete()``
        or ``fail()`` (``with exp.start_logging() as run:`` does so when the block ends). ``snapshot_directory``
        and ``outputs`` are not taken: upload files with ``run.upload_file``."""
        warn_unsupported("Experiment.start_logging", snapshot_directory=snapshot_directory, outputs=outputs)
        body: Dict[str, Any] = {"experiment": self.name, "interactive": True}
        if tags:
            body["tags"] = {str(k): str(v) for k, v in tags.items()}
        doc = self.workspace._client.call("POST", self.workspace._path("/runs"), body=body,
                                          exc=ExperimentExecutionException)
        return Run._from_doc(self, doc)

    def get_runs(self, type: Optional[str] = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False) -> Iterator[Run]:
        """The experiment's runs, newest first; ``tags`` (a name, a list of names or a dict) filters them."""
        for d in self.workspace._list_runs():
            if d.get("experiment") == self.name and (not tags or _tags_match(d.get("tags") or {}, tags)):
                yield Run._from_doc(self, d)

    @property
    def id(self) -> str:
        """The experiment's id: its name, URL-quoted."""
        return quote(self.name)

    def __repr__(self) -> str:
        return "Experiment(Name: %s, Workspace: %s)" % (self.name, self.workspace.name)
