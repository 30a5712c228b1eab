"""One hierarchy for everything deeptag reports to a user.

Each error carries the HTTP status and DeepDetect ``dd_code`` it maps to, so the HTTP layer,
the CLI and the per-image error fields all speak the same language. Library exceptions are
translated into these at the boundary where they happen (``raise ... from e``).
"""

from __future__ import annotations

from typing import ClassVar

#: The most of an input (a path, a URL) an error message quotes; inputs can be megabytes.
INPUT_QUOTE_CHARS = 80


def quote_input(text: str, limit: int = INPUT_QUOTE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut (pure).

    The cut is in the middle: the start says where an input came from and the end is
    usually what names it (a file name, a URL's last segment), so both survive.
    """
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    return text[: limit - 1 - tail] + "…" + text[len(text) - tail :]


class DeeptagError(Exception):
    """Base of every error deeptag raises on purpose."""

    http_status: ClassVar[int] = 500
    dd_code: ClassVar[int] = 1007
    dd_msg: ClassVar[str] = "Internal ML Library Error"
    #: Short machine-readable label, used for metrics and the failure log.
    reason: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- Whole-request problems -------------------------------------------------------------


class BadRequest(DeeptagError):
    http_status = 400
    dd_code = 1006
    dd_msg = "Service Bad Request Error"
    reason = "bad_request"


class NoData(BadRequest):
    dd_code = 1001
    dd_msg = "No Data"
    reason = "no_data"


class TemplateError(BadRequest):
    reason = "template"


class RequestTooLarge(BadRequest):
    """A body over DEEPTAG_MAX_BODY_BYTES or more items than DEEPTAG_MAX_DATA_ITEMS."""

    http_status = 413
    reason = "request_too_large"


class RequestTimedOut(DeeptagError):
    """The whole request ran past DEEPTAG_PREDICT_TIMEOUT_S; its remaining work was dropped."""

    http_status = 504
    dd_code = 1007
    dd_msg = "Request Timed Out"
    reason = "request_timeout"


class ClientDisconnected(DeeptagError):
    """The client left before its answer was ready; nobody reads the response."""

    # nginx's "client closed request": it shows up as such in the request metrics.
    http_status = 499
    dd_code = 1006
    dd_msg = "Client Closed Request"
    reason = "client_disconnected"


class ServiceNotFound(DeeptagError):
    http_status = 404
    dd_code = 1002
    dd_msg = "Service Not Found"
    reason = "service_not_found"


class ServiceConflict(DeeptagError):
    http_status = 409
    dd_code = 1014
    dd_msg = "Service already exists"
    reason = "service_conflict"


class InputConnectorNotFound(DeeptagError):
    """A service asked for an input connector other than ``image`` (DeepDetect answers 404)."""

    http_status = 404
    dd_code = 1004
    dd_msg = "Input Connector Not Found"
    reason = "input_connector"


class Unauthorized(DeeptagError):
    http_status = 401
    dd_code = 1006
    dd_msg = "Unauthorized"
    reason = "unauthorized"


class Forbidden(DeeptagError):
    http_status = 403
    dd_code = 1006
    dd_msg = "Forbidden"
    reason = "forbidden"


class SinkNotAllowed(Forbidden):
    reason = "sink_not_allowed"


class SinkError(DeeptagError):
    """The output connector (Elasticsearch, an HTTP sink) failed or refused the output."""

    http_status = 502
    dd_code = 1009
    dd_msg = "Output Connector Network Error"
    reason = "sink"


class SinkUnavailable(SinkError):
    """The sink could not be reached, or said it is unavailable: try again later."""

    http_status = 503
    reason = "sink_unavailable"


class SinkTimeout(SinkError):
    """The sink did not answer within ``DEEPTAG_SINK_TIMEOUT_S``: a gateway timeout."""

    http_status = 504
    reason = "sink_timeout"


# --- Per-image problems: they become one prediction's ``error``, never the whole call's ---


class ItemError(DeeptagError):
    http_status = 400
    dd_code = 1005
    dd_msg = "Service Input Error"
    reason = "input"


class SourceRefused(ItemError):
    """The source is not allowed: a path outside the roots, a private or metadata address."""

    http_status = 403
    reason = "refused"


class SourceNotFound(ItemError):
    http_status = 404
    reason = "not_found"


class FetchFailed(ItemError):
    http_status = 502
    reason = "fetch"


class ImageTooLarge(ItemError):
    http_status = 413
    reason = "too_large"


class NotAnImage(ItemError):
    http_status = 415
    reason = "not_an_image"


class CorruptImage(ItemError):
    http_status = 422
    reason = "corrupt"


# --- Serving infrastructure ---------------------------------------------------------------


class TritonError(DeeptagError):
    http_status = 503
    reason = "triton"


class TritonUnavailable(TritonError):
    """Triton could not be reached or did not answer in time: worth retrying."""


class ModelNotFound(TritonError):
    reason = "model_missing"


class InferenceFailed(TritonError):
    http_status = 500
    reason = "inference"


class TritonStartError(TritonError):
    reason = "triton_start"


class PortInUse(TritonStartError):
    reason = "port_in_use"


class ExportDependencyMissing(DeeptagError):
    reason = "export_dependency"


class ConfigError(DeeptagError):
    reason = "config"


class QuantisationFailed(DeeptagError):
    """onnxruntime could not quantise or check the INT8 model; FP32 is untouched."""

    reason = "quantisation"


class ModelMismatch(ConfigError):
    """Two Triton endpoints of one pool serve different versions (or shapes) of the model."""

    reason = "model_mismatch"


class OutageTooLong(DeeptagError):
    """A server stayed unavailable for the whole retry window; what is done is kept."""

    http_status = 503
    reason = "outage"


# --- Search backends ------------------------------------------------------------------------


class SearchBackendError(DeeptagError):
    http_status = 503
    reason = "search_backend"


class SearchBackendUnavailable(SearchBackendError):
    """The backend could not be reached, timed out or said it is overloaded: worth retrying."""

    reason = "search_backend_unavailable"


class IndexLocked(SearchBackendError):
    """Another process holds the embedded index's single-writer lock."""

    http_status = 409
    reason = "index_locked"


class InvalidQuery(BadRequest):
    """A query string the backend cannot parse; the message quotes it."""

    reason = "invalid_query"


class ResultWindowTooLarge(BadRequest):
    """A page past the result window (``from + size``), refused as Elasticsearch does."""

    reason = "result_window"


class DocumentNotFound(DeeptagError):
    http_status = 404
    dd_code = 1006
    dd_msg = "Not Found"
    reason = "document_not_found"


# --- Training ---------------------------------------------------------------------------------


class TrainingDataError(BadRequest):
    """A training folder that cannot make a classifier; the message names the folder or class."""

    reason = "training_data"


class JobNotFound(DeeptagError):
    http_status = 404
    dd_code = 1003
    dd_msg = "Job Not Found"
    reason = "job_not_found"


class TrainingConflict(DeeptagError):
    """A service already has a training job running."""

    http_status = 409
    dd_code = 1008
    dd_msg = "Train Predict Conflict"
    reason = "training_conflict"
