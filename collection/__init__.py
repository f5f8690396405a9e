"""The collection core, free of HTTP: image codec, feature extraction, ingest, targets,
reason codes, admin accounts and review. Errors are `collection.errors.DomainError`s;
the web app maps them to HTTP answers (webapp/errors.py)."""
