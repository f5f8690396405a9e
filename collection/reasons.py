"""A sample's reason codes: extraction verdicts, attention_failed, review notes and
model_outlier, stored as one comma-separated text column. The one parser and writer."""
from __future__ import annotations

import re

ATTENTION_FAILED = "attention_failed"
MODEL_OUTLIER = "model_outlier"
REVIEW_PREFIX = "review:"
MAX_LENGTH = 256  # Sample.reasons column width


def parse(text: str | None) -> list[str]:
    """The codes of a stored reasons text, in order, without empties."""
    return [code for code in (text or "").split(",") if code]


def join(codes: list[str]) -> str:
    """Codes as stored; the oldest are dropped if the text would not fit the column."""
    text = ",".join(codes)
    while len(text) > MAX_LENGTH and len(codes) > 1:
        codes = codes[1:]
        text = ",".join(codes)
    return text[:MAX_LENGTH]


def add(text: str | None, code: str) -> str:
    """`text` with `code` appended (moved to the end if present already)."""
    return join([c for c in parse(text) if c != code] + [code])


def review_code(reason: str) -> str:
    """A free-text review reason as one reason code (no commas, short)."""
    slug = re.sub(r"[^a-z0-9_]+", "_", reason.strip().lower()).strip("_")[:40]
    return REVIEW_PREFIX + (slug or "manual")


def with_review(text: str | None, code: str | None) -> str:
    """Replace any earlier review code by `code` (None: just drop them)."""
    kept = [c for c in parse(text) if not c.startswith(REVIEW_PREFIX)]
    return add(join(kept), code) if code else join(kept)
