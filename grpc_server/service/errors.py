"""Errors the scoring service raises; each maps to one gRPC status and one HTTP status.

Overload is RESOURCE_EXHAUSTED / 429 and shutdown UNAVAILABLE / 503: shippers retry those and never
drop data. Bad input is INVALID_ARGUMENT / 400 and names the field.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base: ``code`` for gRPC, ``http_status`` for the JSON gateway, ``field`` when input is at fault."""

    code = grpc.StatusCode.INTERNAL
    http_status = 500

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRequest(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field)


class Overloaded(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class ShuttingDown(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501
