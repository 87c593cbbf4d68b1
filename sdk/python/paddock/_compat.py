"""Helpers for Azure ML parameters that Paddock accepts but cannot honour."""
import warnings
from typing import Any


class PaddockCompatibilityWarning(UserWarning):
    """A parameter of the Azure ML SDK that Paddock accepts but ignores."""


def warn_unsupported(where: str, **params: Any) -> None:
    """Issues one warning naming every given (non-default) parameter that is ignored."""
    given = sorted(k for k, v in params.items() if v not in (None, "", False, [], {}))
    if not given:
        return
    warnings.warn(
        "%s: Paddock ignores %s (no equivalent on a self-hosted server); the rest of the call proceeds."
        % (where, ", ".join(given)), PaddockCompatibilityWarning, stacklevel=3)
