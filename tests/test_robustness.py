"""Every route, hostile input: no 500, and JSON endpoints answer a JSON error naming it.

Walks the app's URL map as a logged-in admin (with a valid CSRF token, so requests get
past the guard and reach the views) and as a stranger, filling path parameters, query
strings and bodies with malformed values."""
from __future__ import annotations

import io
import re


from tests.test_admin import admin_client, page_csrf, seed  # noqa: F401  (admin_client is a fixture)

HOSTILE_SEGMENTS = ["0", "999999999", "9223372036854775808", "1" * 40, "-1", "abc", "x" * 300, "..%2F..%2Fetc", "%00", "<script>"]
HOSTILE_QUERIES = ["page=-1", "page=abc&status=<b>", "volunteer=" + "9" * 400, "status=all&reason=%00",
                   "a=1&a=2&a=3", "a=9223372036854775808&b=99999999999999999999999", "page=99999999999999999999999", "cols=0&rows=99999", "n=1e9", "session_id=" + "z" * 200]
HOSTILE_FORMS = [{}, {"ids": "1,2,x"}, {"sample_ids": ["abc", "-5"], "action": "explode"},
                 {"epochs": "1e99", "batch_size": "-3", "learning_rate": "NaN", "architecture": "gpt5"},
                 {"session_id": "x" * 500, "reason": "r" * 10000},
                 {"decision": "reject", "sample_id": ["9223372036854775808", "1e5"], "screen_width": "1" * 30,
                  "screen_height": "NaN", "epochs": "9" * 40}]


def _paths(app) -> list[tuple[str, set[str]]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = rule.methods - {"HEAD", "OPTIONS"}
        if not rule.arguments:
            found.append((rule.rule, methods))
            continue
        for value in HOSTILE_SEGMENTS:
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "png" if m.group(1) == "kind" else value, rule.rule)
            path = path.replace("<name>", value)
            found.append((path, methods))
    return found


def _check(response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.get_data()[:300])
    if path.startswith(("/api/", "/admin/api/")) and response.status_code >= 400:
        assert response.is_json and response.json["error"] and response.json["message"], path


def test_every_route_survives_hostile_input_as_admin(gz, admin_client):  # noqa: F811
    seed(gz.database_url, volunteers=1, samples_each=3)
    client = admin_client
    csrf = page_csrf(client, "/admin/")
    for path, methods in _paths(client.application):
        if path == "/admin/logout":
            continue
        for method in methods:
            if method == "GET":
                for query in HOSTILE_QUERIES:
                    _check(client.get(f"{path}?{query}"), path)
            else:
                headers = {"X-CSRF-Token": csrf}
                for form in HOSTILE_FORMS:
                    _check(client.open(path, method=method, headers=headers,
                                       data={**form, "csrf_token": csrf}), path)
                _check(client.open(path, method=method, headers=headers, data=b"\x00\xff{[",
                                   content_type="application/json"), path)
                _check(client.open(path, method=method, headers=headers, content_type="multipart/form-data",
                                   data={"frame": (io.BytesIO(b"GIF89a" + b"\0" * 50), "x.jpg"),
                                         "csrf_token": csrf, "screen_width": "-1"}), path)


def test_every_route_refuses_strangers_without_500(gz, client):
    for path, methods in _paths(client.application):
        for method in methods:
            response = client.open(path, method=method, data=b"junk", content_type="application/json")
            _check(response, path)
            if path.startswith("/admin") and not path.startswith("/admin/login"):
                assert response.status_code in (302, 308, 400, 401, 403, 404, 405), (path, method)
