"""The volunteer pages: welcome + consent + the whole collection flow (`/`), and `/delete`
where a volunteer pastes their deletion code. The flow itself runs in static/collect/*.js
against the collection API (docs/api-contract.md); these views only render the shells."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp import get_config

bp = Blueprint("collect", __name__)


@bp.get("/")
def index() -> str:
    config = get_config()
    return render_template("collect.html", consent_version=config.server.consent_version,
                           store_raw_frames=config.server.store_raw_frames)


@bp.get("/delete")
def delete() -> str:
    return render_template("collect_delete.html")
