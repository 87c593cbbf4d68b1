"""Compute targets (was ``azureml.core.compute``): one module per kind, as on the server
(internal/compute); ``_base`` holds what they share."""
from ..exceptions import ComputeTargetException
from ._base import (
    AttachConfiguration, ComputeTarget, ComputeTargetAttachConfiguration, ComputeTargetProvisioningConfiguration,
)
from .adla import AdlaCompute
from .amlcompute import AmlCompute, AmlComputeProvisioningConfiguration, AmlComputeStatus
from .batch import BatchCompute
from .computeinstance import ComputeInstance, ComputeInstanceProvisioningConfiguration, ComputeInstanceStatus
from .databricks import DatabricksCompute, DatabricksComputeStatus
from .hdinsight import HDInsightCompute
from .kubernetes import KubernetesCompute, KubernetesComputeStatus
from .local import LocalCompute
from .remote import RemoteCompute, RemoteComputeStatus

__all__ = [
    "ComputeTarget", "ComputeTargetException", "AmlCompute", "AmlComputeProvisioningConfiguration",
    "AmlComputeStatus", "ComputeInstance", "ComputeInstanceProvisioningConfiguration", "ComputeInstanceStatus",
    "RemoteCompute", "RemoteComputeStatus", "HDInsightCompute", "BatchCompute", "DatabricksCompute",
    "DatabricksComputeStatus",
    "KubernetesCompute", "KubernetesComputeStatus", "AdlaCompute", "LocalCompute", "AttachConfiguration",
    "ComputeTargetAttachConfiguration", "ComputeTargetProvisioningConfiguration",
]
