"""A small live dashboard (one static page reading the JSON API every two seconds)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
PAGE = resources.files(__package__).joinpath("static", "dashboard.html").read_text(encoding="utf-8")


@router.get("/dashboard")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE)
