"""The dashboard: one page plus its scripts and styles, served from the package (no CDN, works offline)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
PAGE = resources.files(__package__).joinpath("static", "dashboard.html").read_text(encoding="utf-8")
STATIC_PATH = "/dashboard/static"
# Mounted by create_app: the scripts and styles the page loads (a router cannot carry a mount).
static_files = StaticFiles(packages=[(__package__, "static")])


@router.get("/dashboard")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE)
