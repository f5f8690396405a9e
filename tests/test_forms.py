"""The multipart parser (webapp/forms.py): the same form as Werkzeug's parser gives, and
every malformed or oversized body a clear 4xx with nothing stored."""
from __future__ import annotations

import io
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request as WerkzeugRequest

from gazelab.schema import Sample, SampleImages
from tests.test_api import NOW, auth, count, face_jpeg, new_session  # noqa: F401 (fixture)
from webapp.forms import MalformedMultipart, Request

BOUNDARY = "gazelabtestboundary7f3a"


def _body(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body as a browser writes it: (name, filename or None, data) each."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        headers = f"Content-Disposition: {disposition}\r\n" + ("Content-Type: image/jpeg\r\n" if filename else "")
        out += f"--{boundary}\r\n{headers}\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _parsed(request_class, body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}"):
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "SERVER_NAME": "test", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "PATH_INFO": "/"}
    request = request_class(environ)
    return (request.form.to_dict(flat=False),
            [(name, upload.filename, upload.content_type, upload.read()) for name, upload in request.files.items(multi=True)])


# Part payloads with what trips parsers: line breaks, dashes, something like the boundary.
PAYLOADS = st.one_of(st.binary(max_size=300),
                     st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"--", b"-", BOUNDARY[:9].encode(),
                                               b"\r\n--gazelab", b"x", b"\xff\xd8"]), max_size=40).map(b"".join))
PARTS = st.lists(st.tuples(st.sampled_from(["frame", "meta", "trial", "csrf_token", "x y"]),
                           st.one_of(st.none(), st.sampled_from(["f.jpg", "a b.jpg"])), PAYLOADS), max_size=6)


@settings(max_examples=300, deadline=None)
@given(PARTS)
def test_the_form_is_the_one_werkzeugs_parser_gives(parts):
    body = _body(parts)
    assert _parsed(Request, body) == _parsed(WerkzeugRequest, body)


@settings(max_examples=200, deadline=None)
@given(PARTS, st.data())
def test_a_cut_or_mangled_body_is_malformed_never_a_different_form(parts, data):
    body = _body(parts)
    cut = data.draw(st.integers(0, max(len(body) - len(f"--{BOUNDARY}--\r\n"), 0)))
    for mangled in (body[:cut], body.replace(f"--{BOUNDARY}--".encode(), b"--nope--")):
        try:
            fast = _parsed(Request, mangled)
        except MalformedMultipart:
            continue
        assert fast == _parsed(WerkzeugRequest, mangled)


def test_a_dots_batch_parses_as_werkzeugs_does():
    parts = [("meta", None, json.dumps([{"client_frame_id": uuid.uuid4().hex}] * 8).encode()),
             ("trial", None, b'{"kind": "collection"}')]
    parts += [("frame", "f.jpg", bytes(range(256)) * 200 + b"\r\n--" + BOUNDARY[:-1].encode())] * 8
    body = _body(parts)
    assert _parsed(Request, body) == _parsed(WerkzeugRequest, body)
    assert len(_parsed(Request, body)[1]) == 8


def _post_raw(client, created, body: bytes, content_type: str | None = None):
    return client.post(f"/api/v1/sessions/{created['session_id']}/frames/batch", data=body,
                       headers={**auth(created), "Content-Type": content_type
                                or f"multipart/form-data; boundary={BOUNDARY}"})


def test_malformed_and_oversized_bodies_get_a_4xx_naming_the_problem(client, gz, face_jpeg):
    created = new_session(client)
    meta = json.dumps([{"client_frame_id": uuid.uuid4().hex, "target_x": 10, "target_y": 10,
                        "captured_at": NOW}])
    good = _body([("meta", None, meta.encode()), ("frame", "f.jpg", face_jpeg)])
    limits = client.application.config
    malformed = 400, "malformed_multipart"
    cases = {
        "truncated": (_post_raw(client, created, good[: len(good) // 2]), *malformed),
        "no closing boundary": (_post_raw(client, created, good[: -len(f"--{BOUNDARY}--\r\n")]), *malformed),
        "another boundary": (_post_raw(client, created, good.replace(BOUNDARY.encode(), b"other")), *malformed),
        "no boundary given": (_post_raw(client, created, good, "multipart/form-data"), *malformed),
        "junk": (_post_raw(client, created, b"\x00\xff" * 500), *malformed),
        "empty": (_post_raw(client, created, b""), 422, "missing_field"),
        "header line too long": (_post_raw(client, created, good.replace(
            b'name="meta"', b'name="meta"; x="' + b"a" * 10_000 + b'"')), *malformed),
        "part without a name": (_post_raw(client, created, good.replace(b'form-data; name="meta"', b"form-data")),
                                *malformed),
        "too many parts": (_post_raw(client, created, _body([("meta", None, b"1")] * (limits["MAX_FORM_PARTS"] + 1))),
                           413, "too_large"),
        "text field too large": (_post_raw(client, created, _body([("meta", None, b"[" + b" " * (
            limits["MAX_FORM_MEMORY_SIZE"] + 1) + b"]"), ("frame", "f.jpg", face_jpeg)])), 413, "too_large"),
    }
    for case, (response, status, error) in cases.items():
        assert (response.status_code, response.json["error"]) == (status, error), (case, response.json)
        assert response.json["message"], case
    assert "ends" in cases["truncated"][0].json["message"] or "end" in cases["truncated"][0].json["message"]
    assert "'meta'" in cases["text field too large"][0].json["message"]
    assert "fields" in cases["too many parts"][0].json["message"]
    assert count(gz, Sample) == 0 and count(gz, SampleImages) == 0
    assert _post_raw(client, created, good).status_code == 201    # the same body, whole, is stored
    assert count(gz, Sample) == 1


def test_a_part_with_nothing_after_its_headers_is_read_as_werkzeugs_test_client_writes_it():
    from werkzeug.test import EnvironBuilder
    environ = EnvironBuilder(method="POST", content_type="multipart/form-data", data={
        "meta": "[]", "frame": [(io.BytesIO(b"x"), "a.jpg"), (io.BytesIO(b""), "b.jpg")]}).get_environ()
    fast, slow = Request(dict(environ)), WerkzeugRequest(environ)
    body = environ["wsgi.input"].read()
    for request in (fast, slow):
        request.environ["wsgi.input"] = io.BytesIO(body)
    assert [f.read() for f in fast.files.getlist("frame")] == [b"x", b""] == [f.read() for f in slow.files.getlist("frame")]
    assert fast.form["meta"] == "[]"
