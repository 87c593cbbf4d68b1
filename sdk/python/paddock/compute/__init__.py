"""Compute targets (was ``azureml.core.compute``)."""
from ..exceptions import ComputeTargetException
from ._compute import (
    AmlCompute, AmlComputeProvisioningConfiguration, AmlComputeStatus, AttachConfiguration, BatchCompute,
    ComputeInstance, ComputeInstanceProvisioningConfiguration, ComputeInstanceStatus, ComputeTarget,
    ComputeTargetAttachConfiguration, ComputeTargetProvisioningConfiguration, DatabricksCompute,
    HDInsightCompute, KubernetesCompute, KubernetesComputeStatus, LocalCompute, RemoteCompute, RemoteComputeStatus,
)

__all__ = [
    "ComputeTarget", "ComputeTargetException", "AmlCompute", "AmlComputeProvisioningConfiguration",
    "AmlComputeStatus", "ComputeInstance", "ComputeInstanceProvisioningConfiguration", "ComputeInstanceStatus",
    "RemoteCompute", "RemoteComputeStatus", "HDInsightCompute", "BatchCompute", "DatabricksCompute",
    "KubernetesCompute", "KubernetesComputeStatus", "LocalCompute", "AttachConfiguration", "ComputeTargetAttachConfiguration",
    "ComputeTargetProvisioningConfiguration",
]
