"""ScriptRunConfig (was ``azureml.core.ScriptRunConfig``)."""
from typing import Any, Dict, List, Optional, Sequence, Union

from ._compat import warn_unsupported
from .environment import Environment
from .exceptions import UserErrorException
from .runconfig import MpiConfiguration, PyTorchConfiguration, RunConfiguration

__all__ = ["ScriptRunConfig"]


class ScriptRunConfig:
    """What to run, where and in what.

    ``script`` runs as ``python3 <script> <arguments...>``; ``command`` (a list or a string split on
    spaces) runs as given. ``compute_target`` is a name or a ComputeTarget (default ``local``).
    ``environment_variables`` (or the Environment's) become the run's env. The SDK is copied into the
    snapshot under ``.paddock-sdk`` and put on PYTHONPATH so the script can ``import paddock``
    (``include_sdk=False`` turns that off).
    """

    def __init__(self, source_directory: Optional[str] = None, script: Optional[str] = None,
                 arguments: Optional[Sequence[Any]] = None, run_config: Optional[RunConfiguration] = None,
                 _telemetry_values: Any = None, compute_target: Any = None,
                 environment: Optional[Environment] = None,
                 distributed_job_config: Optional[Union[PyTorchConfiguration, MpiConfiguration]] = None,
                 resume_from: Any = None, max_run_duration_seconds: Optional[int] = None,
                 command: Optional[Union[str, List[str]]] = None, docker_runtime_config: Any = None,
                 *, environment_variables: Optional[Dict[str, str]] = None, include_sdk: bool = True,
                 resources: Optional[Dict[str, Any]] = None, experiment_name: Optional[str] = None) -> None:
        warn_unsupported("ScriptRunConfig", resume_from=resume_from, docker_runtime_config=docker_runtime_config)
        if script and command:
            raise UserErrorException("give either script or command to ScriptRunConfig, not both")
        self.source_directory = source_directory or "."
        self.script = script
        self.arguments = [str(a) for a in (arguments or [])]
        self.command = command.split() if isinstance(command, str) else (list(command) if command else None)
        self.run_config = run_config or RunConfiguration()
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if max_run_duration_seconds is not None:
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        self.distributed_job_config = distributed_job_config
        self.environment_variables: Dict[str, str] = dict(environment_variables or {})
        self.include_sdk = include_sdk
        self.resources = resources
        if not self.script and not self.command and not self.run_config.script:
            raise UserErrorException("ScriptRunConfig needs script or command")

    @property
    def compute_target(self) -> Any:
        """The target the run goes to (a name or a ComputeTarget)."""
        return self.run_config.target

    @property
    def environment(self) -> Environment:
        """The Environment the run runs in."""
        return self.run_config.environment

    def _command(self) -> List[str]:
        if self.command:
            return [str(c) for c in self.command] + self.arguments
        script = self.script or self.run_config.script
        return ["python3", str(script)] + self.arguments + [str(a) for a in self.run_config.arguments]

    def _target_name(self) -> str:
        t = self.run_config.target
        if t is None:
            return "local"
        return t if isinstance(t, str) else str(t.name)

    def _env(self) -> Dict[str, str]:
        env: Dict[str, str] = {}
        env.update({k: str(v) for k, v in (self.run_config.environment.environment_variables or {}).items()})
        env.update({k: str(v) for k, v in (self.run_config.environment_variables or {}).items()})
        env.update({k: str(v) for k, v in self.environment_variables.items()})
        if self.include_sdk:
            from ._snapshot import SDK_DIR
            env["PYTHONPATH"] = SDK_DIR + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def _submit_body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"compute": self._target_name(), "command": self._command()}
        env = self.run_config.environment._to_server()
        if env:
            body["environment"] = env
        variables = self._env()
        if variables:
            body["env"] = variables
        d = self.distributed_job_config
        if d is not None:
            body["distribution"] = d._kind
            body["node_count"] = d.node_count
            body["process_count_per_node"] = d.process_count_per_node
        elif self.run_config.node_count and self.run_config.node_count > 1:
            body["node_count"] = self.run_config.node_count
        if self.run_config.max_run_duration_seconds:
            body["max_run_duration_seconds"] = int(self.run_config.max_run_duration_seconds)
        if self.resources:
            body["resources"] = dict(self.resources)
        return body
