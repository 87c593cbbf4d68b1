"""Compatibility module: ``from paddock.compute_target import ComputeTargetException``
(was ``azureml.core.compute_target``)."""
from .exceptions import ComputeTargetException
from .compute import ComputeTarget

__all__ = ["ComputeTargetException", "ComputeTarget"]
