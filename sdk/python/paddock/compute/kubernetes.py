"""Kubernetes namespaces (was ``azureml.core.compute.KubernetesCompute``): Paddock's ``kubernetes`` type."""
from typing import Any, Dict, Optional

from .._compat import warn_unsupported
from ._base import _Attached, _AttachConfig, _read_file, register

__all__ = ["KubernetesCompute", "KubernetesAttachConfiguration"]


class KubernetesAttachConfiguration(_AttachConfig):
    """What ``KubernetesCompute.attach_configuration`` returns (the kubeconfig is not shown in its repr)."""


@register
class KubernetesCompute(_Attached):
    """A Kubernetes namespace (type ``kubernetes``)."""
    _paddock_type = "kubernetes"
    _azure_type = "Kubernetes"

    @staticmethod
    def attach_configuration(kubeconfig_file: Optional[str] = None, namespace: Optional[str] = None,
                             instance_types: Optional[Dict[str, Any]] = None, resource_id: Optional[str] = None
                             ) -> KubernetesAttachConfiguration:
        """A cluster's kubeconfig file and namespace; ``resource_id`` is ignored with a warning."""
        warn_unsupported("KubernetesCompute.attach_configuration", resource_id=resource_id)
        return KubernetesAttachConfiguration("kubernetes", {
            "kubeconfig": _read_file(kubeconfig_file, "kubeconfig_file"), "namespace": namespace,
            "instance_types": instance_types})
