"""Run environments (was ``azureml.core.Environment``)."""
import os
from typing import Any, Dict, Optional

from .exceptions import UserErrorException

__all__ = ["Environment", "PythonSection", "DockerSection"]


class PythonSection:
    def __init__(self) -> None:
        self.interpreter_path: Optional[str] = None
        self.user_managed_dependencies: bool = False
        self.conda_dependencies: Any = None


class DockerSection:
    def __init__(self) -> None:
        self.base_image: Optional[str] = None
        self.enabled: Optional[bool] = None
        self.base_dockerfile: Optional[str] = None


class Environment:
    """What a run's command runs in. Maps to the server's ``environment``: ``{image}`` when
    ``docker.base_image`` is set, else ``{requirements}`` from pip requirements, else ``{python}`` when
    ``python.interpreter_path`` is set, else the node's python3. ``environment_variables`` become the
    run's env."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.version: Optional[str] = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: Dict[str, str] = {}
        self.requirements: Optional[str] = None

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str, pip_version: Optional[str] = None) -> "Environment":
        try:
            with open(os.path.expanduser(file_path), "r", encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UserErrorException("cannot read requirements file %s: %s" % (file_path, e.strerror or e)) from None
        env = cls(name)
        env.requirements = text
        return env

    @classmethod
    def from_existing_interpreter(cls, name: str, interpreter_path: str) -> "Environment":
        env = cls(name)
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = interpreter_path
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str, **kwargs: Any) -> "Environment":
        env = cls(name)
        env.docker.base_image = image
        return env

    def _to_server(self) -> Dict[str, str]:
        if self.docker.base_image and self.docker.enabled is not False:
            return {"image": self.docker.base_image}
        if self.requirements:
            return {"requirements": self.requirements}
        if self.python.interpreter_path:
            return {"python": self.python.interpreter_path}
        return {}

    def register(self, workspace: Any) -> "Environment":
        """Paddock keeps no environment registry: returns the environment unchanged."""
        return self

    def __repr__(self) -> str:
        return "Environment(name=%r, %r)" % (self.name, self._to_server())


_ = os
