"""Paddock Python SDK: compute targets and runs on a self-hosted Paddock server, with the names of the
Azure ML SDK v1 (``azureml.core``) so a script ports by changing its imports."""
from ._compat import PaddockCompatibilityWarning
from ._version import __version__
from .conda_dependencies import CondaDependencies
from .environment import Environment
from .exceptions import ComputeTargetException, PaddockException, UserErrorException
from .experiment import Experiment
from .run import Run
from .runconfig import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, MpiConfiguration, PyTorchConfiguration, RunConfiguration
from .script_run_config import ScriptRunConfig
from .workspace import Workspace

__all__ = [
    "__version__", "Workspace", "Experiment", "ScriptRunConfig", "Run", "Environment", "CondaDependencies",
    "RunConfiguration", "PyTorchConfiguration", "MpiConfiguration", "DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE",
    "ComputeTargetException", "PaddockException", "UserErrorException", "PaddockCompatibilityWarning",
]
