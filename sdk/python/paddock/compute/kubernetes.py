"""Kubernetes namespaces (was ``azureml.core.compute.KubernetesCompute``): Paddock's ``kubernetes`` type.
Runs become Jobs whose pods run the Paddock agent; clusters with ``provider="kubernetes"`` get their nodes as
pods. See docs/kubernetes.md."""
from typing import Any, Dict, List, Optional

from ..exceptions import ComputeTargetException
from .._compat import warn_unsupported
from ._base import _Attached, _AttachConfig, _read_file, _Status, ComputeTarget, register

__all__ = ["KubernetesCompute", "KubernetesAttachConfiguration", "KubernetesComputeStatus"]


class KubernetesAttachConfiguration(_AttachConfig):
    """What ``KubernetesCompute.attach_configuration`` returns (the kubeconfig is not shown in its repr)."""


class KubernetesComputeStatus(_Status):
    """What the server sees of an attached Kubernetes cluster: reachable, version, its nodes (name, ready, and
    the cores, memory_gb and gpus each offers pods) and their totals."""

    _keys = (("reachable", "reachable"), ("version", "version"), ("node_count", "nodeCount"),
             ("cores", "cores"), ("memory_gb", "memoryGB"), ("gpus", "gpus"), ("nodes", "nodes"),
             ("nodes_error", "nodesError"), ("error", "error"))

    def __init__(self, target: ComputeTarget) -> None:
        super().__init__(target)
        s = self._raw
        self.reachable: Optional[bool] = s.get("reachable")
        self.version: Optional[str] = s.get("version")
        self.node_count: Optional[int] = s.get("node_count")
        self.cores: Optional[float] = s.get("cores")
        self.memory_gb: Optional[float] = s.get("memory_gb")
        self.gpus: Optional[int] = s.get("gpus")
        self.nodes: List[Dict[str, Any]] = list(s.get("nodes") or [])
        self.nodes_error: Optional[str] = s.get("nodes_error")
        self.error: Optional[str] = s.get("error")


@register
class KubernetesCompute(_Attached):
    """A namespace of a Kubernetes cluster (Azure ML's Kubernetes compute)."""
    _paddock_type = "kubernetes"
    _azure_type = "Kubernetes"
    _status_class = KubernetesComputeStatus

    @staticmethod
    def attach_configuration(resource_id: Optional[str] = None, namespace: Optional[str] = None,
                             identity_type: Optional[str] = None, identity_ids: Optional[List[str]] = None, *,
                             kubeconfig_file: Optional[str] = None, kubeconfig: Optional[str] = None,
                             context: Optional[str] = None, instance_types: Optional[Dict[str, Any]] = None,
                             image: Optional[str] = None, server_url: Optional[str] = None,
                             lowpriority_priority_class: Optional[str] = None,
                             lowpriority_tolerations: Optional[List[str]] = None,
                             description: Optional[str] = None, tags: Optional[Dict[str, str]] = None
                             ) -> KubernetesAttachConfiguration:
        """Azure ML's parameters in Azure ML's order where they mean something here (``namespace``); the
        cluster is named by a kubeconfig (``kubeconfig_file``, or its content as ``kubeconfig``) instead of an
        Azure resource id; ``resource_id``, ``identity_type`` and ``identity_ids`` are ignored with one
        ``PaddockCompatibilityWarning``. ``instance_types`` maps names to
        ``{"cpu": "4", "memory": "16Gi", "gpu": 1, "node_selector": {...}}``."""
        warn_unsupported("KubernetesCompute.attach_configuration", resource_id=resource_id,
                         identity_type=identity_type, identity_ids=identity_ids)
        if kubeconfig is not None and kubeconfig_file is not None:
            raise ComputeTargetException("give kubeconfig_file or kubeconfig, not both", code="Invalid",
                                         field="kubeconfig")
        content = kubeconfig if kubeconfig is not None else _read_file(kubeconfig_file, "kubeconfig_file")
        if not content:
            raise ComputeTargetException(
                "KubernetesCompute.attach_configuration needs kubeconfig_file (a kubeconfig with a token or "
                "client certificate; docs/kubernetes.md makes one); Azure resource ids have no meaning to Paddock",
                code="Invalid", field="kubeconfig")
        return KubernetesAttachConfiguration("kubernetes", {
            "kubeconfig": content, "context": context, "namespace": namespace, "instance_types": instance_types,
            "image": image, "server_url": server_url, "lowpriority_priority_class": lowpriority_priority_class,
            "lowpriority_tolerations": lowpriority_tolerations, "description": description, "tags": tags})

    @property
    def namespace(self) -> Optional[str]:
        """The namespace Paddock makes its Jobs and pods in."""
        return self.properties.get("namespace")

    @property
    def instance_types(self) -> Dict[str, Any]:
        """The named pod sizes runs choose from."""
        return dict(self.properties.get("instance_types") or {})

    def get_status(self) -> KubernetesComputeStatus:
        """Refreshes and returns what the server sees of the cluster: its nodes and what they offer."""
        return super().get_status()  # type: ignore[return-value]
