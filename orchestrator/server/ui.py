"""The search page: ``/``, its static files, and thumbnails of indexed local images."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
