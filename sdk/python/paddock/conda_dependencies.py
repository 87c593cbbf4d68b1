"""Conda environment specifications (was ``azureml.core.conda_dependencies``).

A ``CondaDependencies`` is an environment.yml: a python version, conda packages and pip packages. A run
whose environment has one gets, on a node with micromamba, mamba or conda, that environment built by it
(once per content); elsewhere a venv with its pip packages (once per content) on a node whose python3
meets its python version, and a clear error naming any conda package, which needs conda."""
import importlib
import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Union

from .exceptions import UserErrorException

__all__ = ["CondaDependencies"]

_DEFAULT_CHANNELS = ["conda-forge"]


def _name_of(spec: str) -> str:
    """A package spec's name: ``numpy==1.26`` → ``numpy``."""
    return re.split(r"[\s=<>!~\[;@]", spec.strip(), maxsplit=1)[0].lower()


class CondaDependencies:
    """A conda environment specification: python version, channels, conda packages, pip packages.

    ``CondaDependencies()`` is empty (no python pin: the node's python3); ``CondaDependencies(path)`` reads
    an environment.yml; ``CondaDependencies.create(...)`` builds one. Unlike Azure ML, Paddock adds no
    ``azureml-defaults`` package: runs import the SDK from their snapshot."""

    def __init__(self, conda_dependencies_file_path: Optional[str] = None,
                 _underlying_structure: Optional[Dict[str, Any]] = None) -> None:
        self._name = "project_environment"
        self._channels: List[str] = list(_DEFAULT_CHANNELS)
        self._python: Optional[str] = None
        self._conda: List[str] = []
        self._pip: List[str] = []
        self._pip_options: List[str] = []
        if conda_dependencies_file_path is not None:
            try:
                with open(os.path.expanduser(conda_dependencies_file_path), "r", encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise UserErrorException("cannot read conda file %s: %s" % (conda_dependencies_file_path,
                                                                            e.strerror or e)) from None
            _underlying_structure = _parse_yaml(text, conda_dependencies_file_path)
        if _underlying_structure is not None:
            self._load(_underlying_structure)

    # -- construction ----------------------------------------------------
    @staticmethod
    def create(pip_indexurl: Optional[str] = None, pip_packages: Optional[List[str]] = None,
               conda_packages: Optional[List[str]] = None, python_version: Optional[str] = None,
               pin_sdk_version: bool = True) -> "CondaDependencies":
        """A specification with these packages. ``python_version`` pins python (default: none, the node's
        python3 as it is); ``pip_indexurl`` becomes an ``--index-url`` option of pip."""
        cd = CondaDependencies()
        if python_version:
            cd.set_python_version(python_version)
        if pip_indexurl:
            cd.set_pip_index_url(pip_indexurl)
        for p in conda_packages or []:
            cd.add_conda_package(p)
        for p in pip_packages or []:
            cd.add_pip_package(p)
        return cd

    @staticmethod
    def _from_text(text: str, where: str = "the conda specification") -> "CondaDependencies":
        return CondaDependencies(_underlying_structure=_parse_yaml(text, where))

    def _load(self, doc: Dict[str, Any]) -> None:
        if not isinstance(doc, dict):
            raise UserErrorException("a conda specification is a mapping with name, channels and dependencies")
        unknown = sorted(set(doc) - {"name", "channels", "dependencies", "prefix"})
        if unknown:
            raise UserErrorException("the conda specification has %s, which Paddock does not use (it reads name, "
                                     "channels and dependencies)" % ", ".join(unknown), field="conda")
        self._name = str(doc.get("name") or self._name)
        self._channels = [str(c) for c in doc.get("channels") or []]
        for dep in doc.get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                for p in dep["pip"] or []:
                    p = str(p)
                    if p.startswith("-"):
                        self._pip_options.append(p)
                    else:
                        self._pip.append(p)
            elif isinstance(dep, str):
                if _name_of(dep) == "python":
                    self._python = dep.strip()[len("python"):].lstrip("=") or None
                elif _name_of(dep) != "pip":
                    self._conda.append(dep.strip())
            else:
                raise UserErrorException("conda dependency %r is neither a package nor a pip list" % (dep,),
                                         field="conda")

    # -- changes ---------------------------------------------------------
    def add_conda_package(self, conda_package: str) -> None:
        """Adds a conda package (``numpy`` or ``numpy=1.26``), replacing one of the same name."""
        self.remove_conda_package(_name_of(conda_package))
        if _name_of(conda_package) == "python":
            self.set_python_version(conda_package.strip()[len("python"):].lstrip("="))
            return
        self._conda.append(conda_package.strip())

    def remove_conda_package(self, conda_package: str) -> None:
        """Removes a conda package by name."""
        self._conda = [p for p in self._conda if _name_of(p) != _name_of(conda_package)]

    def add_pip_package(self, pip_package: str) -> None:
        """Adds a pip package (a requirements line), replacing one of the same name."""
        self.remove_pip_package(_name_of(pip_package))
        self._pip.append(pip_package.strip())

    def remove_pip_package(self, pip_package: str) -> None:
        """Removes a pip package by name."""
        self._pip = [p for p in self._pip if _name_of(p) != _name_of(pip_package)]

    def add_channel(self, channel: str) -> None:
        """Adds a conda channel."""
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        """Removes a conda channel."""
        self._channels = [c for c in self._channels if c != channel]

    def set_python_version(self, version: str) -> None:
        """Pins python (``3.10`` or ``3.10.4``); a node without conda must have a matching python3."""
        self._python = str(version).strip() or None

    def get_python_version(self) -> Optional[str]:
        """The pinned python version, if any."""
        return self._python

    def set_pip_index_url(self, index_url: str) -> None:
        """Installs pip packages from this index."""
        self._pip_options = [o for o in self._pip_options if not o.startswith("--index-url")]
        self._pip_options.append("--index-url " + index_url)

    def add_pip_option(self, pip_option: str) -> None:
        """Adds a pip option line (``--extra-index-url URL`` …)."""
        if pip_option not in self._pip_options:
            self._pip_options.append(pip_option)

    # -- reading ---------------------------------------------------------
    @property
    def conda_packages(self) -> Iterator[str]:
        """The conda packages (python and pip left out)."""
        return iter(list(self._conda))

    @property
    def pip_packages(self) -> Iterator[str]:
        """The pip packages."""
        return iter(list(self._pip))

    @property
    def conda_channels(self) -> Iterator[str]:
        """The conda channels."""
        return iter(list(self._channels))

    @property
    def pip_options(self) -> Iterator[str]:
        """The pip option lines."""
        return iter(list(self._pip_options))

    def _as_dict(self) -> Dict[str, Any]:
        deps: List[Union[str, Dict[str, List[str]]]] = []
        if self._python:
            deps.append("python=" + self._python if self._python[0].isdigit() else "python" + self._python)
        deps.extend(self._conda)
        if self._pip or self._pip_options:
            deps.append("pip")
            deps.append({"pip": self._pip_options + self._pip})
        return {"name": self._name, "channels": list(self._channels), "dependencies": deps}

    def serialize_to_string(self) -> str:
        """The specification as environment.yml text."""
        return _to_yaml(self._as_dict())

    def save(self, path: Optional[str] = None) -> str:
        """Writes the environment.yml to ``path`` (default ``./conda_dependencies.yml``); returns the path."""
        path = path or "conda_dependencies.yml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def save_to_file(self, base_directory: str, conda_file_path: Optional[str] = None) -> str:
        """Writes the environment.yml under ``base_directory``; returns its path."""
        return self.save(os.path.join(base_directory, conda_file_path or "conda_dependencies.yml"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self._as_dict() == other._as_dict()

    def __repr__(self) -> str:
        return self.serialize_to_string()


def _to_yaml(doc: Dict[str, Any]) -> str:
    """environment.yml text of name, channels and dependencies (strings quoted as JSON, which YAML reads)."""
    q = json.dumps
    lines = ["name: " + q(doc["name"]), "channels:"] + ["  - " + q(c) for c in doc["channels"]]
    if not doc["channels"]:
        lines[-1] = "channels: []"
    lines.append("dependencies:")
    for d in doc["dependencies"]:
        if isinstance(d, dict):
            lines.append("  - pip:")
            lines.extend("    - " + q(p) for p in d["pip"])
        else:
            lines.append("  - " + q(d))
    if not doc["dependencies"]:
        lines[-1] = "dependencies: []"
    return "\n".join(lines) + "\n"


def _parse_yaml(text: str, where: str) -> Dict[str, Any]:
    """Reads an environment.yml: with PyYAML when it is installed, else the subset environment files use
    (mappings of scalars and lists, a ``pip:`` list inside dependencies, comments, quoted scalars)."""
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return _parse_simple_yaml(text, where)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserErrorException("%s is not valid YAML: %s" % (where, e), field="conda") from None
    if not isinstance(doc, dict):
        raise UserErrorException("%s must be a mapping with name, channels and dependencies" % where,
                                 field="conda")
    return doc


def _scalar(s: str) -> str:
    s = s.strip()
    if s.startswith('"'):
        try:
            return str(json.loads(s))
        except ValueError:
            pass
    if len(s) >= 2 and s[0] == s[-1] == "'":
        return s[1:-1].replace("''", "'")
    return s


def _parse_simple_yaml(text: str, where: str) -> Dict[str, Any]:
    doc: Dict[str, Any] = {}
    key: Optional[str] = None
    pip: Optional[List[str]] = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s+#.*$", "", raw.rstrip()) if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            pip = None
            if ":" not in body:
                raise UserErrorException("%s line %d: %r is not `key: value`" % (where, n, raw), field="conda")
            key, _, value = body.partition(":")
            key = key.strip()
            value = value.strip()
            doc[key] = [] if value in ("", "[]") else _scalar(value)
        elif body.startswith("- ") or body == "-":
            item = body[1:].strip()
            if key is None or not isinstance(doc.get(key), list):
                raise UserErrorException("%s line %d: a list item outside a list" % (where, n), field="conda")
            if pip is not None and indent > 2:
                pip.append(_scalar(item))
            elif item.rstrip(":").strip() == "pip" and item.endswith(":"):
                pip = []
                doc[key].append({"pip": pip})
            else:
                pip = None
                doc[key].append(_scalar(item))
        else:
            raise UserErrorException("%s line %d: %r is not YAML Paddock reads without PyYAML (install pyyaml)"
                                     % (where, n, raw), field="conda")
    return doc
