"""GazeLab web app: Flask app factory (config loaded once, blueprints, Celery)."""
from __future__ import annotations

import datetime
from pathlib import Path

from flask import Flask, g
from sqlalchemy.orm import Session
from werkzeug.routing import IntegerConverter

from gazelab.celery_app import make_celery
from gazelab.config import Config, load_config
from gazelab.db import session_factory
from gazelab.files import private_data_dir, secret_key
from webapp import forms

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    private_data_dir(config)
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.request_class = forms.Request   # multipart bodies parsed ~20x faster than Werkzeug's parser
    app.url_map.converters["int"] = DatabaseIdConverter
    app.config.update(
        GAZELAB=config,
        SECRET_KEY=secret_key(config),
        MAX_CONTENT_LENGTH=config.server.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.server.secure_cookies,
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=config.server.session_hours),
        SESSION_COOKIE_SAMESITE="Lax",
        # Send the cookie only when the session changed: a page's many image responses
        # would otherwise race a form post and put back the cookie from before it.
        SESSION_REFRESH_EACH_REQUEST=False,
        JSON_SORT_KEYS=False,
    )
    app.extensions["db_sessions"] = session_factory(config.database_url)
    celery_init_app(app, config)

    from webapp import errors, headers, health
    errors.register(app)
    headers.register(app)
    app.register_blueprint(health.bp)
    # BLUEPRINTS (one line each)
    from webapp.admin import bp as admin_bp; app.register_blueprint(admin_bp)
    from webapp.api import bp as api_bp; app.register_blueprint(api_bp)
    from webapp.collect import bp as collect_bp; app.register_blueprint(collect_bp)

    app.teardown_appcontext(_close_db)
    return app


class DatabaseIdConverter(IntegerConverter):
    """`<int:…>` in routes: ids beyond a 64-bit database integer are simply not found (404)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**62)
        super().__init__(url_map, *args, **kwargs)


def celery_init_app(app: Flask, config: Config):
    """The Celery client of this app: views send tasks to the workers by name
    (gazelab.celery_app's constants); the tasks themselves live in trainer.tasks and run
    without the web app."""
    celery = make_celery(config, app.name)
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def get_db() -> Session:
    """The request's database session (closed at the end of the request)."""
    from flask import current_app
    if "db" not in g:
        g.db = current_app.extensions["db_sessions"]()
    return g.db


def get_config() -> Config:
    from flask import current_app
    return current_app.config["GAZELAB"]


def _close_db(_exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
