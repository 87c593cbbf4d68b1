"""Experiments (was ``azureml.core.Experiment``)."""
import re
from typing import Any, Dict, Iterator, Optional
from urllib.parse import quote

from .exceptions import ExperimentExecutionException, UserErrorException
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

    def submit(self, config: Any, tags: Optional[Dict[str, str]] = None, **kwargs: Any) -> "Run":
        """Uploads the source snapshot (if the server lacks it) and queues the run; returns the Run."""
        from ._snapshot import pack
        from .run import Run
        from .script_run_config import ScriptRunConfig
        if not isinstance(config, ScriptRunConfig):
            raise UserErrorException("Experiment.submit takes a ScriptRunConfig, not %s" % type(config).__name__)
        ws = self.workspace
        client = ws._client
        body = config._submit_body()
        body["experiment"] = self.name
        data, digest = pack(config.source_directory, include_sdk=config.include_sdk)
        if client.status_of("HEAD", ws._path("/snapshots/" + digest), exc=ExperimentExecutionException) != 200:
            ref = client.call_raw_json("PUT", ws._path("/snapshots"), data, "application/gzip",
                                       exc=ExperimentExecutionException)
            digest = (ref or {}).get("digest", digest)
        body["source"] = digest
        doc = client.call("POST", ws._path("/runs"), body=body, exc=ExperimentExecutionException)
        return Run._from_doc(self, doc)

    def get_runs(self, type: Optional[str] = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False) -> Iterator["Run"]:
        """The experiment's runs, newest first."""
        from .run import Run
        for d in self.workspace._list_runs():
            if d.get("experiment") == self.name:
                yield Run._from_doc(self, d)

    @property
    def id(self) -> str:
        return quote(self.name)

    def __repr__(self) -> str:
        return "Experiment(Name: %s, Workspace: %s)" % (self.name, self.workspace.name)


from .run import Run  # noqa: E402  (type reference)
