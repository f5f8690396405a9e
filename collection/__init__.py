"""The collection core, free of HTTP: image codec, feature extraction, ingest, targets,
reason codes, admin accounts and review. Errors are `collection.errors.DomainError`s;
the web app maps them to HTTP answers (webapp/errors.py)."""

# Registers the after_flush hook that keeps the admin summary current on every write of a
# sample through the ORM, whichever layer makes it (see collection.summary).
from collection import summary as _summary  # noqa: E402,F401
