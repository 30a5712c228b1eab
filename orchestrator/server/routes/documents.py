"""``DELETE /index/{id}``: remove an indexed image from the search backend on purpose."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from orchestrator.errors import BadRequest, DocumentNotFound, quote_input
from orchestrator.search.base import is_document_id
from orchestrator.server.openapi import described
from orchestrator.server.response_models import Acknowledged
from orchestrator.server.state import State

router = APIRouter()


@router.delete(
    "/index/{doc_id}",
    response_model=None,
    **described(ok=Acknowledged, errors=(400, 404, 503)),
)
async def delete_document(doc_id: str, state: State) -> dict[str, Any]:
    """Remove indexed image ``doc_id`` (all its locations); its files are not touched."""
    if not is_document_id(doc_id):
        raise BadRequest(
            f"document id '{quote_input(doc_id, 80)}' is not a SHA-256 (64 hex characters)"
        )
    backend = await state.get_backend()
    if doc_id not in await backend.delete([doc_id]):
        raise DocumentNotFound(f"no indexed image has id {doc_id}")
    return {"status": {"code": 200, "msg": "OK"}}
