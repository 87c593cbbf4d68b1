"""Run environments (was ``azureml.core.Environment``)."""
import copy
import os
from typing import Any, Dict, List, Optional

from ._compat import PaddockCompatibilityWarning, warn_unsupported
from .conda_dependencies import CondaDependencies
from .exceptions import UserErrorException

__all__ = ["Environment", "PythonSection", "DockerSection", "DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE"]

# Azure ML's default images are built for its own service; Paddock's defaults are plain public images that
# podman or docker on a node can pull (runs use images already on the node: see docs/runs.md).
DEFAULT_CPU_IMAGE = "docker.io/library/python:3.11-slim"
DEFAULT_GPU_IMAGE = "docker.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04"


class PythonSection:
    """How the run's python is set up: an existing interpreter (``interpreter_path`` with
    ``user_managed_dependencies=True``) or one made from ``conda_dependencies``."""

    def __init__(self) -> None:
        self.interpreter_path: Optional[str] = None
        self.user_managed_dependencies: bool = False
        self.conda_dependencies: Optional[CondaDependencies] = None
        self.conda_dependencies_file: Optional[str] = None


class DockerSection:
    """The container a run runs in: ``base_image`` when ``enabled`` is not False (``enabled=True`` without an
    image: ``DEFAULT_CPU_IMAGE``). Paddock does not build images: ``base_dockerfile`` is refused at submit."""

    def __init__(self) -> None:
        self.base_image: Optional[str] = None
        self.enabled: Optional[bool] = None
        self.base_dockerfile: Optional[str] = None
        self.base_image_registry: Any = None
        self.shm_size: Optional[str] = None
        self.arguments: List[str] = []


class Environment:
    """What a run's command runs in. Maps to the server's ``environment``: ``{image}`` for a docker image,
    ``{conda}`` for conda dependencies, ``{requirements}`` for pip requirements, ``{python}`` for an existing
    interpreter, else the node's python3. ``environment_variables`` become the run's env. ``register`` keeps a
    named version in the workspace; ``Environment.get`` fetches it back."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.version: Optional[str] = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: Dict[str, str] = {}
        self.requirements: Optional[str] = None
        self.description: Optional[str] = None

    # -- construction ----------------------------------------------------
    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str, pip_version: Optional[str] = None) -> "Environment":
        """An environment of a requirements.txt: a venv with those packages, made once per content."""
        warn_unsupported("Environment.from_pip_requirements", pip_version=pip_version)
        env = cls(name)
        env.requirements = _read(file_path, "requirements file")
        return env

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str) -> "Environment":
        """An environment of a conda environment.yml (see ``CondaDependencies`` for how nodes build it)."""
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies._from_text(_read(file_path, "conda file"), file_path)
        return env

    @classmethod
    def from_existing_interpreter(cls, name: str, interpreter_path: str) -> "Environment":
        """An existing python on the nodes, used as it is."""
        env = cls(name)
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = interpreter_path
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str, container_registry: Any = None,
                          conda_specification: Optional[str] = None,
                          pip_requirements: Optional[str] = None) -> "Environment":
        """A container image on the nodes. Paddock runs the image as it is: a conda specification or pip
        requirements would need building into it, so they are refused."""
        if conda_specification or pip_requirements:
            raise UserErrorException("Paddock runs images as they are and does not install packages into them: "
                                     "build an image with your packages and give that", field="conda_specification")
        warn_unsupported("Environment.from_docker_image", container_registry=container_registry)
        env = cls(name)
        env.docker.enabled = True
        env.docker.base_image = image
        return env

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str, conda_specification: Optional[str] = None,
                        pip_requirements: Optional[str] = None) -> "Environment":
        """An environment described by a Dockerfile (its text or path). Paddock does not build images, so
        submitting a run with it raises; build the image on the nodes and use ``docker.base_image``."""
        env = cls(name)
        env.docker.enabled = True
        env.docker.base_dockerfile = _read(dockerfile, "Dockerfile") if os.path.isfile(dockerfile) else dockerfile
        if conda_specification:
            env.python.conda_dependencies = CondaDependencies._from_text(_read(conda_specification, "conda file"))
        if pip_requirements:
            env.requirements = _read(pip_requirements, "requirements file")
        return env

    def clone(self, new_name: str) -> "Environment":
        """A copy under another name (unregistered)."""
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    # -- the server's shape ----------------------------------------------
    def _image(self) -> Optional[str]:
        if self.docker.enabled is False:  # as in Azure ML: no container, base_image or not
            return None
        if self.docker.base_dockerfile:
            raise UserErrorException("environment %s has a Dockerfile, and Paddock does not build images: build it "
                                     "on the nodes (podman build -t NAME .) and set docker.base_image = NAME"
                                     % self.name, field="docker.base_dockerfile")
        if self.docker.base_image:
            return self.docker.base_image
        return DEFAULT_CPU_IMAGE if self.docker.enabled else None

    def _to_server(self) -> Dict[str, str]:
        warn_unsupported("Environment", **{"docker.shm_size": self.docker.shm_size,
                                           "docker.arguments": self.docker.arguments,
                                           "docker.base_image_registry": self.docker.base_image_registry})
        image = self._image()
        conda = None if self.python.user_managed_dependencies else self.python.conda_dependencies
        if image:
            if conda is not None or self.requirements:
                import warnings
                warnings.warn("environment %s: Paddock runs the image %s as it is; its conda dependencies and pip "
                              "requirements are not installed into it (build them into the image)"
                              % (self.name, image), PaddockCompatibilityWarning, stacklevel=3)
            return {"image": image}
        if self.python.user_managed_dependencies:
            return {"python": self.python.interpreter_path} if self.python.interpreter_path else {}
        if conda is not None:
            if self.requirements:
                raise UserErrorException("environment %s has both conda dependencies and pip requirements: put the "
                                         "pip packages in the conda dependencies" % self.name, field="requirements")
            return {"conda": conda.serialize_to_string()}
        if self.requirements:
            return {"requirements": self.requirements}
        if self.python.interpreter_path:
            return {"python": self.python.interpreter_path}
        return {}

    @classmethod
    def _from_server(cls, doc: Dict[str, Any]) -> "Environment":
        env = cls(doc.get("name") or "default")
        env.version = str(doc["version"]) if doc.get("version") is not None else None
        env.description = doc.get("description") or None
        env.environment_variables = dict(doc.get("env") or {})
        e = doc.get("environment") or {}
        if e.get("image"):
            env.docker.enabled = True
            env.docker.base_image = e["image"]
        if e.get("conda"):
            env.python.conda_dependencies = CondaDependencies._from_text(e["conda"])
        if e.get("requirements"):
            env.requirements = e["requirements"]
        if e.get("python"):
            env.python.user_managed_dependencies = True
            env.python.interpreter_path = e["python"]
        return env

    # -- the workspace's registry ----------------------------------------
    def register(self, workspace: Any) -> "Environment":
        """Registers the environment in the workspace under its name: a new version when it differs from the
        latest one, else that one. Returns the registered environment (with its ``version``)."""
        from .exceptions import ExperimentExecutionException
        body = {"name": self.name, "environment": self._to_server(), "env": dict(self.environment_variables),
                "description": self.description or ""}
        doc = workspace._client.call("POST", workspace._path("/environments"), body=body,
                                     exc=ExperimentExecutionException)
        return Environment._from_server(doc)

    @staticmethod
    def get(workspace: Any, name: str, version: Optional[str] = None, label: Optional[str] = None) -> "Environment":
        """A registered environment: the latest version, or ``version``."""
        from urllib.parse import quote

        from .exceptions import ExperimentExecutionException
        warn_unsupported("Environment.get", label=label)
        doc = workspace._client.call("GET", workspace._path("/environments/" + quote(name, safe="")),
                                     query={"version": version}, exc=ExperimentExecutionException)
        return Environment._from_server(doc)

    @staticmethod
    def list(workspace: Any) -> Dict[str, "Environment"]:
        """The workspace's registered environments by name (the latest version of each)."""
        from .exceptions import ExperimentExecutionException
        doc = workspace._client.call("GET", workspace._path("/environments"), exc=ExperimentExecutionException)
        return {d["name"]: Environment._from_server(d) for d in (doc or {}).get("items") or []}

    def __repr__(self) -> str:
        what = {"image": self.docker.base_image if self.docker.enabled is not False else None,
                "conda": self.python.conda_dependencies is not None or None, "requirements": bool(self.requirements) or None,
                "python": self.python.interpreter_path}
        return "Environment(name=%r, version=%r, %r)" % (self.name, self.version,
                                                         {k: v for k, v in what.items() if v})


def _read(path: str, what: str) -> str:
    try:
        with open(os.path.expanduser(path), "r", encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise UserErrorException("cannot read %s %s: %s" % (what, path, e.strerror or e)) from None
