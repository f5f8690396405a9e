"""The volunteer pages: welcome + consent + the whole collection flow (`/`), and `/delete`
where a volunteer pastes their deletion code. The flow itself runs in static/collect/*.js
against the collection API (docs/api-contract.md); these views only render the shells."""
from __future__ import annotations

import math

from flask import Blueprint, render_template

from gazelab.config import Config
from webapp import get_config

bp = Blueprint("collect", __name__)


SETUP_SECONDS = 90          # reading, camera check and screen set-up, roughly
CALIBRATION_DOTS = 9


def expected_minutes(config: Config) -> int:
    """The task's length from its configuration: calibration and dots, each shown for the
    fixation delay, the capture window and the attention letter, plus pursuit and set-up."""
    c = config.collection
    per_dot_ms = c.fixation_delay_ms + c.capture_window_ms + c.attention_ms
    seconds = SETUP_SECONDS + (CALIBRATION_DOTS + c.dots_per_session) * per_dot_ms / 1000
    seconds += c.pursuit_seconds if c.pursuit else 0
    return max(1, math.ceil(seconds / 60))


def retention_text(config: Config) -> str:
    days = config.server.retention_days
    if not days:
        return "They are kept for as long as the project runs, unless you delete them earlier."
    return f"They are deleted automatically {days} days after you take part, or earlier if you ask."


@bp.get("/")
def index() -> str:
    config = get_config()
    return render_template("collect.html", consent_version=config.server.consent_version,
                           store_raw_frames=config.server.store_raw_frames,
                           minutes=expected_minutes(config), retention=retention_text(config),
                           ttl_hours=config.server.session_ttl_hours)


@bp.get("/delete")
def delete() -> str:
    return render_template("collect_delete.html")
