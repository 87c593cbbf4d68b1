"""Run configurations (was ``azureml.core.runconfig``): distributed-job configurations, RunConfiguration
and the default images."""
import json
import os
from typing import Any, Dict, Optional

from ._compat import PaddockCompatibilityWarning, warn_unsupported
from .environment import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, Environment
from .exceptions import UserErrorException

__all__ = ["PyTorchConfiguration", "MpiConfiguration", "RunConfiguration", "DEFAULT_CPU_IMAGE",
           "DEFAULT_GPU_IMAGE"]


class _Distribution:
    _kind = "none"

    def __init__(self, process_count: Optional[int] = None, node_count: int = 1,
                 process_count_per_node: int = 1) -> None:
        self.node_count = int(node_count)
        self.process_count_per_node = int(process_count_per_node)
        if process_count:
            if int(process_count) % max(1, self.node_count):
                raise UserErrorException("process_count %d must be a multiple of node_count %d (the same number "
                                         "of processes on every node)" % (process_count, self.node_count),
                                         field="process_count")
            self.process_count_per_node = max(1, int(process_count) // max(1, self.node_count))

    @property
    def process_count(self) -> int:
        """Processes in all: node_count × process_count_per_node."""
        return self.node_count * self.process_count_per_node


class PyTorchConfiguration(_Distribution):
    """``distribution: pytorch``: ``process_count`` processes over ``node_count`` nodes, each with MASTER_ADDR,
    MASTER_PORT, WORLD_SIZE, RANK and LOCAL_RANK set (as torch.distributed's env:// expects)."""
    _kind = "pytorch"

    def __init__(self, communication_backend: str = "Nccl", process_count: Optional[int] = None,
                 node_count: int = 1) -> None:
        super().__init__(process_count=process_count, node_count=node_count)
        self.communication_backend = communication_backend


class MpiConfiguration(_Distribution):
    """``distribution: mpi``: the command starts through OpenMPI's mpirun on the first node,
    ``process_count_per_node`` processes on each of ``node_count`` nodes."""
    _kind = "mpi"

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1) -> None:
        super().__init__(node_count=node_count, process_count_per_node=process_count_per_node)


class RunConfiguration:
    """What to run and where, without a source directory: ``script``, ``arguments``, ``target``,
    ``environment``, ``node_count``, ``environment_variables``, ``max_run_duration_seconds``. Give it to
    ``ScriptRunConfig(run_config=...)``; ``save``/``load`` keep it in a file (JSON, which YAML readers read).
    ``framework`` is ``Python``: Paddock runs scripts with python3 (another framework warns)."""

    def __init__(self, script: Optional[str] = None, arguments: Any = None, framework: Optional[str] = None,
                 communicator: Optional[str] = None, conda_dependencies: Any = None, _history_enabled: Any = None,
                 _path: Optional[str] = None, _name: Optional[str] = None, command: Any = None) -> None:
        if framework and framework.lower() != "python":
            import warnings
            warnings.warn("RunConfiguration: framework %r is not offered by Paddock: scripts run with python3 "
                          "(for Spark, call spark-submit in the run's command)" % framework,
                          PaddockCompatibilityWarning, stacklevel=2)
        warn_unsupported("RunConfiguration", communicator=communicator if communicator not in (None, "None") else None)
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.target: Any = "local"
        self.environment = Environment("default")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.node_count = 1
        self.environment_variables: Dict[str, str] = {}
        self.max_run_duration_seconds: Optional[int] = None

    def _as_dict(self) -> Dict[str, Any]:
        t = self.target
        env = self.environment
        cd = env.python.conda_dependencies
        return {
            "script": self.script, "arguments": [str(a) for a in self.arguments], "command": self.command,
            "framework": self.framework, "communicator": self.communicator,
            "target": t if isinstance(t, str) or t is None else getattr(t, "name", str(t)),
            "nodeCount": self.node_count, "maxRunDurationSeconds": self.max_run_duration_seconds,
            "environmentVariables": dict(self.environment_variables),
            "environment": {
                "name": env.name, "version": env.version, "environmentVariables": dict(env.environment_variables),
                "python": {"interpreterPath": env.python.interpreter_path,
                           "userManagedDependencies": env.python.user_managed_dependencies,
                           "condaDependencies": cd.serialize_to_string() if cd is not None else None},
                "docker": {"enabled": env.docker.enabled, "baseImage": env.docker.base_image,
                           "baseDockerfile": env.docker.base_dockerfile},
                "requirements": env.requirements,
            },
        }

    def save(self, path: Optional[str] = None, name: Optional[str] = None,
             separate_environment_yaml: bool = False) -> str:
        """Writes the configuration: to ``path`` when it is a file name, else to
        ``<path or .>/.azureml/<name or 'runconfig'>.runconfig``. Returns the file's path."""
        warn_unsupported("RunConfiguration.save", separate_environment_yaml=separate_environment_yaml)
        target = _runconfig_path(path, name)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            json.dump(self._as_dict(), f, indent=2)
            f.write("\n")
        return target

    @staticmethod
    def load(path: Optional[str] = None, name: Optional[str] = None) -> "RunConfiguration":
        """Reads a configuration ``save`` wrote (the same path rules)."""
        from .conda_dependencies import CondaDependencies
        target = _runconfig_path(path, name)
        try:
            with open(target, "r", encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise UserErrorException("cannot read run configuration %s: %s" % (target, e.strerror or e)) from None
        except ValueError as e:
            raise UserErrorException("run configuration %s is not one RunConfiguration.save wrote: %s"
                                     % (target, e)) from None
        rc = RunConfiguration(script=d.get("script"), arguments=d.get("arguments"), command=d.get("command"))
        rc.framework, rc.communicator = d.get("framework") or "Python", d.get("communicator") or "None"
        rc.target = d.get("target") or "local"
        rc.node_count = int(d.get("nodeCount") or 1)
        rc.max_run_duration_seconds = d.get("maxRunDurationSeconds")
        rc.environment_variables = dict(d.get("environmentVariables") or {})
        ed = d.get("environment") or {}
        env = Environment(ed.get("name") or "default")
        env.version = ed.get("version")
        env.environment_variables = dict(ed.get("environmentVariables") or {})
        py, dk = ed.get("python") or {}, ed.get("docker") or {}
        env.python.interpreter_path = py.get("interpreterPath")
        env.python.user_managed_dependencies = bool(py.get("userManagedDependencies"))
        if py.get("condaDependencies"):
            env.python.conda_dependencies = CondaDependencies._from_text(py["condaDependencies"], target)
        env.docker.enabled, env.docker.base_image = dk.get("enabled"), dk.get("baseImage")
        env.docker.base_dockerfile = dk.get("baseDockerfile")
        env.requirements = ed.get("requirements")
        rc.environment = env
        return rc

    def __repr__(self) -> str:
        return json.dumps(self._as_dict(), indent=2)


def _runconfig_path(path: Optional[str], name: Optional[str]) -> str:
    if path and not os.path.isdir(path) and (path.endswith(".runconfig") or os.path.splitext(path)[1]):
        return path
    return os.path.join(path or ".", ".azureml", (name or "runconfig") + ".runconfig")

