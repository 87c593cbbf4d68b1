"""Exceptions of the Paddock SDK (the names of ``azureml.exceptions``)."""
from typing import Any, Dict, Optional

__all__ = [
    "PaddockException", "AzureMLException", "UserErrorException", "AuthenticationException",
    "WorkspaceException", "ComputeTargetException", "ExperimentExecutionException",
    "ActivityFailedException", "RunException", "SnapshotException",
]


class PaddockException(Exception):
    """Base of every SDK error.

    ``message`` is the server's sentence (or the SDK's), ``code`` the server's
    error code (``Invalid``, ``NotFound``, ``Conflict`` …), ``field`` the input
    at fault when the server names one, ``status`` the HTTP status.
    """

    def __init__(self, message: str, code: Optional[str] = None, field: Optional[str] = None,
                 status: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status

    def __str__(self) -> str:
        return self.message

    def serialize(self) -> Dict[str, Any]:
        """The error as a dict: message, code, field, status."""
        return {"message": self.message, "code": self.code, "field": self.field, "status": self.status}

    @classmethod
    def _from(cls, other: "PaddockException", prefix: str = "") -> "PaddockException":
        return cls(prefix + other.message, code=other.code, field=other.field, status=other.status)


AzureMLException = PaddockException


class UserErrorException(PaddockException):
    """Invalid input detected by the SDK or the server (HTTP 400)."""


class AuthenticationException(PaddockException):
    """The server refused the token (HTTP 401/403)."""


class WorkspaceException(PaddockException):
    """The workspace or its configuration could not be found or used."""


class ComputeTargetException(PaddockException):
    """A compute target operation failed (not found, invalid, conflict …)."""


class ExperimentExecutionException(PaddockException):
    """Submitting or managing a run failed."""


class RunException(ExperimentExecutionException):
    """A run operation failed."""


class ActivityFailedException(ExperimentExecutionException):
    """A run ended Failed or Canceled while waiting for it."""

    def __init__(self, message: str, run_details: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.run_details = run_details or {}


class SnapshotException(UserErrorException):
    """The source directory could not be packed (size limit, unsafe symlink …)."""
