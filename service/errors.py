"""The service's own exceptions; they derive from the project's ``RobustnessError`` and become
HTTP errors only in ``service.app``'s exception handlers."""

from __future__ import annotations

from studies.errors import RobustnessError


class ServiceError(RobustnessError):
    """Base of the service-specific errors."""


class TooManyStudiesError(ServiceError):
    """Too many studies are queued or running; try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnauthorizedError(ServiceError):
    """The request lacks the bearer token (``wrong=False``) or carries a wrong one."""

    def __init__(self, message: str, *, wrong: bool = False) -> None:
        super().__init__(message)
        self.wrong = wrong


class BadRequestError(ServiceError):
    """The request is malformed before any spec is read (bad JSON, wrong content type)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyConflictError(ServiceError):
    """An Idempotency-Key was reused with a different request body."""


class FigureNotAvailableError(ServiceError, LookupError):
    """The study has no such figure (e.g. a warmup figure for a study with one warmup)."""


class UnsafeBindError(ServiceError):
    """The service was asked to listen beyond loopback without an API token."""
