"""API errors raised by handlers; each service renders them in its own envelope."""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status, title = 400, "Bad Request"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"


class Forbidden(ApiError):
    status, title = 403, "Forbidden"


class NotFound(ApiError):
    status, title = 404, "Not Found"


class MethodNotAllowed(ApiError):
    status, title = 405, "Method Not Allowed"


class NotAcceptable(ApiError):
    status, title = 406, "Not Acceptable"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class PayloadTooLarge(ApiError):
    status, title = 413, "Request Entity Too Large"


class RangeNotSatisfiable(ApiError):
    status, title = 416, "Requested Range Not Satisfiable"


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported Media Type"


class TooManyRequests(ApiError):
    status, title = 429, "Too Many Requests"


class ServiceUnavailable(ApiError):
    status, title = 503, "Service Unavailable"


class NotImplementedByHost(ApiError):
    """What a host cannot tell (Nova's 501 from a virt driver without the call)."""

    status, title = 501, "Not Implemented"


BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed,
                NotAcceptable, Conflict, PayloadTooLarge, RangeNotSatisfiable,
                UnsupportedMediaType, TooManyRequests, ServiceUnavailable)
}
