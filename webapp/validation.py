"""Declarative checks of request fields: every failure is an ApiError naming the field."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from flask import Request

from webapp.errors import ApiError

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class Field:
    kind: str                      # int | number | bool | str | enum | datetime | client_id | literal_true
    required: bool = True
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 512


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(422, "invalid_field", f"{name}: {message}")


def _number(name: str, value: Any, field: Field, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(name, f"must be {'an integer' if integer else 'a number'}, got {value!r}"[:200])
    if integer and not float(value).is_integer():
        raise _invalid(name, f"must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise _invalid(name, "must be finite")
    if (field.lo is not None and value < field.lo) or (field.hi is not None and value > field.hi):
        raise _invalid(name, f"must be between {field.lo} and {field.hi}, got {value!r}")
    return int(value) if integer else float(value)


def parse_datetime(name: str, value: Any) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _invalid(name, "must be an ISO 8601 date-time text")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(name, f"{value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if not 2000 <= parsed.year <= 2100:
        raise _invalid(name, "year must be between 2000 and 2100")
    return parsed


def _value(name: str, value: Any, field: Field) -> Any:
    if value is None:
        if field.nullable:
            return None
        raise _invalid(name, "must not be null")
    if field.kind in ("int", "number"):
        return _number(name, value, field, field.kind == "int")
    if field.kind == "bool":
        if not isinstance(value, bool):
            raise _invalid(name, "must be true or false")
        return value
    if field.kind == "literal_true":
        if value is not True:
            raise _invalid(name, "must be true")
        return value
    if field.kind == "datetime":
        return parse_datetime(name, value)
    if not isinstance(value, str):
        raise _invalid(name, f"must be a text, got {type(value).__name__}")
    if field.kind == "enum" and value not in field.choices:
        raise _invalid(name, f"must be one of {', '.join(field.choices)}, got {value[:40]!r}")
    if field.kind == "client_id" and not _CLIENT_ID.match(value):
        raise _invalid(name, "must be 8-64 letters, digits, '-' or '_' (a UUID)")
    if len(value) > field.max_len:
        raise _invalid(name, f"is longer than {field.max_len} characters")
    return value


def parse_fields(data: Any, spec: dict[str, Field], where: str = "body") -> dict[str, Any]:
    """Check a JSON object against `spec`: no missing, unknown or malformed fields."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", f"the {where} must be a JSON object")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field(s) in {where}: {', '.join(map(str, unknown))[:200]}")
    parsed = {}
    for name, field in spec.items():
        if name not in data:
            if field.required:
                raise ApiError(422, "missing_field", f"{where} lacks the field {name!r}")
            parsed[name] = None
            continue
        parsed[name] = _value(name, data[name], field)
    return parsed


def json_body(request: Request) -> Any:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def parse_json_text(name: str, text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", f"the {name} field is not valid JSON") from None


def _reject_constant(token: str):
    raise ValueError(f"{token} is not allowed")


MAX_DATABASE_ID = 2**62


def parse_int(name: str, raw: str | None, lo: int, hi: int, default: int | None = None) -> int:
    """An integer from a query string or form field, within [lo, hi] (ApiError otherwise)."""
    if raw is None and default is not None:
        return default
    text = (raw or "").strip()
    if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())) or len(text) > 20 \
            or not lo <= int(text) <= hi:
        raise ApiError(400, "invalid_field",
                       f"{name}: must be an integer from {lo} to {hi}")
    return int(text)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip() or None
    return None
