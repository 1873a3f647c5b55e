"""One error shape for every failure: OpenAI's ``{"error": {message, type, param, code}}``, never a traceback.

Library exceptions (``cadre.errors``) map to HTTP statuses here; anything unexpected becomes a 500 whose body
says only "internal error" (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cadre.errors import (
    BackendError,
    CadreError,
    CapacityError,
    ConfigError,
    ContextLengthError,
    NotFoundError,
    PipelineError,
    RequestRejectedError,
)
from cadre.serve.protocol import ErrorBody, ErrorResponse

__all__ = ["APIError", "ClientGone", "error_response", "install_error_handlers"]

log = logging.getLogger("cadre.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


class ClientGone(Exception):
    """The client disconnected before its answer was ready; nothing is sent back."""


class APIError(Exception):
    """An error with its HTTP status, raised by the serving layer and rendered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error")
        self.headers = headers or {}

    @classmethod
    def from_exception(cls, err: BaseException) -> APIError:
        """Map a library exception to its HTTP meaning."""
        if isinstance(err, APIError):
            return err
        if isinstance(err, ContextLengthError):
            return cls(400, str(err), code="context_length_exceeded", param="messages")
        if isinstance(err, NotFoundError):
            return cls(404, str(err), code="model_not_found", param="model")
        if isinstance(err, CapacityError):
            return cls(429, str(err), code="queue_full", headers={"Retry-After": "1"})
        if isinstance(err, ConfigError | RequestRejectedError):
            return cls(400, str(err), code="invalid_value")
        if isinstance(err, PipelineError):
            return cls(400, str(err), code="pipeline_failed")
        if isinstance(err, ClientGone):
            return cls(499, "client closed the request", code="client_closed")
        if isinstance(err, BackendError):
            # The detail may name internal endpoints: it goes to the server log, not to the client.
            log.warning("backend error: %s", err)
            return cls(502, "the model backend failed; the server log has the details", code="backend_error")
        if isinstance(err, TimeoutError):
            return cls(504, "the model did not answer in time", code="timeout")
        if isinstance(err, CadreError):
            return cls(500, str(err), code="cadre_error")
        log.error("unexpected error while serving a request", exc_info=err)
        return cls(500, "internal error (see the server log)", code="internal_error")


def error_response(err: APIError) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=err.message, type=err.type, param=err.param, code=err.code))
    return JSONResponse(body.model_dump(), status_code=err.status, headers=err.headers)


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    errors: list[Any] = list(err.errors())
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}" if param else f"{msg}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    """Render every error in OpenAI's shape."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(APIError.from_exception(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _validation_message(exc)
        return error_response(APIError(400, message, param=param, code="invalid_request"))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            message = f"no route {request.url.path!r}; see /v1/models, /v1/chat/completions, /v1/completions"
        return error_response(APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {})))

    async def on_client_gone(request: Request, exc: Exception) -> JSONResponse:
        # Not a server failure: no traceback, and counted as 499 (nginx's "client closed request").
        log.info(
            "%s %s: the client disconnected before the answer was ready", request.method, request.url.path
        )
        return error_response(APIError.from_exception(exc))

    app.add_exception_handler(ClientGone, on_client_gone)
    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(CadreError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_api_error)
