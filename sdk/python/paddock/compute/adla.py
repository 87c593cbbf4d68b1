"""Azure Data Lake Analytics (was ``azureml.core.compute.AdlaCompute``): retired by its vendor; Paddock
keeps the name so that ported scripts end with a clear ``ComputeTargetException``, not an ImportError."""
from typing import Optional

from ._base import _Attached, _AttachConfig, not_offered, register

__all__ = ["AdlaCompute", "AdlaAttachConfiguration"]

_RETIRED = ("Azure Data Lake Analytics targets: the service was retired by Microsoft (February 2024) and has no "
            "self-hosted equivalent", "run U-SQL work as a Spark or Python job on a cluster or a RemoteCompute")


class AdlaAttachConfiguration(_AttachConfig):
    """Never made: ``AdlaCompute.attach_configuration`` raises."""


@register
class AdlaCompute(_Attached):
    """Azure Data Lake Analytics: retired; attaching one raises ``ComputeTargetException``."""
    _paddock_type = "adla"
    _azure_type = "DataLakeAnalytics"

    @staticmethod
    def attach_configuration(resource_group: Optional[str] = None, account_name: Optional[str] = None,
                             resource_id: Optional[str] = None) -> AdlaAttachConfiguration:
        """Raises ``ComputeTargetException``: the service was retired (the parameters are Azure ML's)."""
        raise not_offered(*_RETIRED)
