"""``GET /duplicates``: groups of exact copies and near duplicates, a keeper suggested for each.

The API and the page only show them: moving files is the command line's
(``deeptag duplicates --move-to``), where a manifest can undo it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from orchestrator.dedupe import DEFAULT_THRESHOLD, find_groups, found_json
from orchestrator.search.limits import MAX_RESULT_WINDOW
from orchestrator.server.openapi import described
from orchestrator.server.response_models import DuplicatesResponse
from orchestrator.server.state import State

router = APIRouter()


@router.get(
    "/duplicates",
    response_model=None,
    **described(ok=DuplicatesResponse, errors=(400, 503)),
)
async def duplicates(
    state: State,
    threshold: float = Query(
        default=DEFAULT_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="The least embedding cosine of two near duplicates; higher finds fewer.",
    ),
    size: int = Query(default=20, ge=0, le=MAX_RESULT_WINDOW, description="Groups per page."),
    offset: int = Query(
        default=0, ge=0, le=MAX_RESULT_WINDOW, alias="from", description="Groups to skip."
    ),
) -> dict[str, Any]:
    """Exact copies and near duplicates among indexed images, largest groups first."""
    backend = await state.get_backend()
    found = await find_groups(backend, (), threshold)
    return found_json(found, offset, size)
