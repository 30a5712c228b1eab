"""Calls to Triton with tritonclient's and the transports' errors translated into deeptag's.

Every caller (the image model's client, the text encoder, the pool's probes) goes through
:func:`call_triton`, so an outage reads the same whichever protocol or call met it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tritonclient.utils import InferenceServerException

from orchestrator.errors import InferenceFailed, ModelNotFound, TritonUnavailable
from orchestrator.triton.endpoint import Endpoint

#: Statuses of a server that is down, restarting or overloaded, whatever the message says: a
#: gRPC call cut by a dying server reads "Stream removed (Socket closed)".
_OUTAGE_STATUSES = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "502", "503", "504"}
)


async def call_triton(awaitable: Any, endpoint: Endpoint, what: str, timeout_s: float) -> Any:
    """``awaitable``'s result, with tritonclient's and the transports' errors translated.

    ``what`` names the model in the message ("model 'efficientnet_lite0'").
    """
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except InferenceServerException as e:
        message = e.message() or str(e)
        lowered = message.lower()
        if e.status() in _OUTAGE_STATUSES or "unavailable" in lowered or "connect" in lowered:
            raise TritonUnavailable(f"Triton at {endpoint} is unreachable: {message}") from e
        if "unknown model" in lowered or "not found" in lowered:
            raise ModelNotFound(
                f"Triton at {endpoint} does not serve {what}: {message}; "
                "run `deeptag models export`"
            ) from e
        raise InferenceFailed(f"Triton at {endpoint}: {message}") from e
    except TimeoutError as e:
        raise TritonUnavailable(
            f"Triton at {endpoint} did not answer within {timeout_s:.0f}s"
        ) from e
    except OSError as e:
        raise TritonUnavailable(f"Triton at {endpoint} is unreachable: {e}") from e
    except Exception as e:
        # aiohttp/grpc raise their own connection errors; none of them is a user's bug.
        if type(e).__module__.split(".")[0] in ("aiohttp", "grpc"):
            raise TritonUnavailable(f"Triton at {endpoint} is unreachable: {e}") from e
        raise
