"""The volunteer page in a real browser: Debian chromium (Playwright) with a fake webcam
showing the virtual volunteer (`gazelab sim-video`), against a real gunicorn server and
Celery worker. Screenshots of every step go to test-artifacts/collect-*.png."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from gazelab.db import session_scope
from gazelab.schema import CollectionSession, Sample, SampleImages, Trial, Volunteer
from tests.browser import VIEWPORT, launch_chromium, screenshot, sim_webcam_y4m
from tests.support import WebServer

pytestmark = pytest.mark.browser

FAST = "fixation=200&capture=400&fps=5&attention=2500&validation=0"
KEYS = {"L": "ArrowLeft", "R": "ArrowRight"}
WRONG = {"L": "ArrowRight", "R": "ArrowLeft"}


@pytest.fixture(scope="module")
def webcam(tmp_path_factory):
    return sim_webcam_y4m(tmp_path_factory.getbasetemp())


@pytest.fixture
def browser(webcam):
    with launch_chromium(video=webcam) as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def step(page) -> str:
    return page.evaluate("document.body.dataset.step")


def data(page, name: str) -> str | None:
    return page.evaluate(f"document.body.dataset[{name!r}]")


def assert_screen(gz, session_id: str, expected: tuple) -> None:
    with session_scope(gz.database_url) as db:
        session = db.get(CollectionSession, session_id)
        assert (session.screen_width, session.screen_height, session.mm_per_px) == expected


def consent_and_camera(page, url: str, shots: bool = False, card_steps: int = 0,
                       window_before_fullscreen: dict | None = None, on_camera=None) -> str:
    """Keyboard only: consent → camera check → screen set-up (card widened by `card_steps`
    big steps and confirmed, or skipped) → intro → start. With `window_before_fullscreen`
    the page starts at that size and grows to VIEWPORT on the set-up step; `on_camera(id)`
    runs during the camera check."""
    if window_before_fullscreen:
        page.set_viewport_size(window_before_fullscreen)
    page.goto(url)
    if shots:   # at 1280x720 the agree button is visible without scrolling
        window = page.viewport_size
        page.set_viewport_size(VIEWPORT)
        box = page.locator("#consent-button").bounding_box()
        assert box["y"] + box["height"] <= VIEWPORT["height"], "the consent button is below the fold"
        screenshot(page, "collect-1-consent")
        page.set_viewport_size(window)
    page.focus("#consent-box")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    # the deletion code comes before any picture is taken
    page.wait_for_function("document.body.dataset.step === 'code'")
    session_id = data(page, "sessionId")
    assert page.inner_text("#early-code").startswith(page.evaluate("JSON.parse(sessionStorage.getItem("
                                                                   "'gazelab.session')).created.volunteer_id"))
    if shots:
        screenshot(page, "collect-1b-code")
    page.keyboard.press("Enter")   # "I have kept it" has the focus
    page.wait_for_function("document.body.dataset.step === 'camera'")
    page.wait_for_function("document.querySelector('#camera-verdict').dataset.status === 'accepted'")
    assert page.inner_text("#camera-verdict") == "Face found"
    assert page.evaluate("document.activeElement.id") == "camera-continue"
    if on_camera:
        on_camera(session_id)
    if shots:
        screenshot(page, "collect-2-camera")
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.step === 'setup'")
    if window_before_fullscreen:
        page.set_viewport_size(VIEWPORT)
        page.wait_for_function(f"innerWidth === {VIEWPORT['width']}")
    page.focus("#card-rect")
    for _ in range(card_steps):
        page.keyboard.press("Shift+ArrowRight")
    if shots:
        screenshot(page, "collect-3-setup")
    for button in ("#setup-measured", "#setup-skip"):
        box = page.locator(button).bounding_box()
        assert box["y"] + box["height"] <= page.viewport_size["height"], f"{button} is below the fold"
    page.focus("#setup-measured" if card_steps else "#setup-skip")
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.step === 'intro'")
    assert data(page, "screen") == f"{VIEWPORT['width']}x{VIEWPORT['height']}"
    if shots:
        screenshot(page, "collect-4-intro")
    page.keyboard.press("Enter")  # the start button has the focus
    page.wait_for_function("document.body.dataset.step !== 'intro'")
    assert step(page) == "task", page.inner_text("#error-text")
    return session_id


def answer_letters(page, wrong: set[int] = frozenset(), silent: set[int] = frozenset(),
                   until=None, shot_at: int | None = None) -> list[str]:
    """Answer each attention letter (read from the page) until the task ends or `until()`
    is true; trial numbers in `wrong` get the other arrow, those in `silent` no answer.
    Returns the letters seen."""
    letters = []
    while step(page) == "task" and not (until and until()):
        handle = page.wait_for_function(
            "document.body.dataset.step !== 'task' || "
            "document.getElementById('attention-letter').textContent", timeout=30_000)
        letter = handle.json_value()
        if step(page) != "task" or letter not in KEYS:
            continue
        if shot_at == len(letters):
            screenshot(page, "collect-5-dot-with-letter")
        if len(letters) not in silent:
            page.keyboard.press((WRONG if len(letters) in wrong else KEYS)[letter])
        letters.append(letter)
        page.wait_for_function("!document.getElementById('attention-letter').textContent")
    return letters


def wait_finished(page) -> None:
    page.wait_for_function("document.body.dataset.finished === '1'", timeout=60_000)


def test_full_flow_stores_samples_with_crops_and_attention(gz, worker, web, page):
    # the window grows to VIEWPORT at the set-up step, as full screen does on a real screen
    session_id = consent_and_camera(page, f"{web.url}/?dots=30&{FAST}", shots=True, card_steps=5,
                                    window_before_fullscreen={"width": 1100, "height": 620},
                                    on_camera=lambda sid: assert_screen(gz, sid, (1100, 620, None)))
    assert_screen(gz, session_id, (VIEWPORT["width"], VIEWPORT["height"], pytest.approx(85.6 / 330)))

    letters = answer_letters(page, until=lambda: int(data(page, "done") or 0) >= 3
                             and data(page, "phase") == "collection", shot_at=2)
    page.keyboard.press("Escape")
    page.wait_for_function("document.body.dataset.paused === '1'")
    screenshot(page, "collect-6-paused")
    page.keyboard.press("Space")
    page.wait_for_function("!document.body.dataset.paused")
    page.wait_for_timeout(1000)  # resizes right after resuming are taken as its own settling
    page.set_viewport_size({"width": 900, "height": 600})  # a resize pauses and asks back
    page.wait_for_function("document.body.dataset.paused === '1'")
    assert "changed size" in page.inner_text("#pause-text")
    page.keyboard.press("Space")
    assert "smaller than when you started" in page.inner_text("#pause-text")
    page.set_viewport_size(VIEWPORT)
    page.wait_for_function(f"innerWidth === {VIEWPORT['width']}")
    page.keyboard.press("Space")
    page.wait_for_function("!document.body.dataset.paused")
    letters += answer_letters(page)
    wait_finished(page)
    page.wait_for_function("document.body.dataset.coverage")   # the map is fetched after the summary
    screenshot(page, "collect-7-finish", full_page=True)

    assert len(letters) >= 39  # 9 calibration + 30 dots (a paused dot is shown again)
    assert data(page, "failed") == "0"
    captured = int(data(page, "captured"))
    with session_scope(gz.database_url) as db:
        trials = db.scalars(select(Trial).where(Trial.session_id == session_id)).all()
        answered = [t for t in trials if t.attention_passed is not None]
        assert sum(t.kind == "calibration" for t in answered) == 9
        assert sum(t.kind == "collection" for t in answered) == 30
        assert all(t.attention_passed for t in answered)
        assert len({t.client_trial_id for t in trials}) == len(trials)  # each trial sent with its own id
        assert [t.attention_letter for t in sorted(answered, key=lambda t: t.id)] == letters
        samples = db.scalars(select(Sample).where(Sample.session_id == session_id)).all()
        assert len(samples) == captured
        accepted = [s for s in samples if s.status == "accepted"]
        assert len(accepted) >= 0.9 * captured
        for sample in accepted:
            images: SampleImages = sample.images
            assert all(len(getattr(images, kind)) > 100
                       for kind in ("face", "face_aligned", "l_eye", "r_eye", "head_pos"))
        by_trial = {s.trial_id for s in accepted}
        assert {t.id for t in answered if t.kind == "collection"} <= by_trial
        volunteer_id = db.scalar(select(CollectionSession.volunteer_id)
                                 .where(CollectionSession.id == session_id))
    assert f"We kept {len(accepted)} of your {captured} pictures" in page.inner_text("#finish-summary")
    assert page.inner_text("#deletion-code").startswith(volunteer_id + ".")

    page.focus("#delete-now")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # the button asks once more
    page.wait_for_function("document.body.dataset.deleted === '1'")
    screenshot(page, "collect-8-deleted")
    with session_scope(gz.database_url) as db:
        assert db.get(Volunteer, volunteer_id) is None
        for table in (CollectionSession, Trial, Sample):
            column = table.session_id if table is not CollectionSession else table.id
            assert db.scalar(select(func.count()).select_from(table).where(column == session_id)) == 0


def session_rows(gz, session_id: str) -> tuple[list[Trial], list[Sample]]:
    with session_scope(gz.database_url) as db:
        trials = db.scalars(select(Trial).where(Trial.session_id == session_id).order_by(Trial.id)).all()
        samples = db.scalars(select(Sample).where(Sample.session_id == session_id)).all()
        db.expunge_all()
    return trials, samples


def test_wrong_or_missing_arrow_fails_the_trial_and_pursuit_records(gz, web, page):
    url = f"{web.url}/?calibration=0&dots=3&{FAST}&attention=1500&pursuit=1&pursuit_seconds=2"
    session_id = consent_and_camera(page, url)
    letters = answer_letters(page, wrong={0}, silent={1})
    wait_finished(page)
    assert len(letters) == 3

    trials, samples = session_rows(gz, session_id)
    dots = [t for t in trials if t.kind == "collection"]
    assert [t.attention_passed for t in dots] == [False, False, True]
    assert dots[0].attention_answer == {"L": "R", "R": "L"}[letters[0]]
    assert dots[1].attention_answer is None
    by_trial = {t.id: [s for s in samples if s.trial_id == t.id] for t in trials}
    for failed in dots[:2]:
        assert by_trial[failed.id]
        assert all(s.status == "rejected" and "attention_failed" in s.reasons for s in by_trial[failed.id])
    assert by_trial[dots[2].id] and all(s.status == "accepted" for s in by_trial[dots[2].id])

    pursuit = [t for t in trials if t.kind == "pursuit"]
    pursuit_samples = [s for t in pursuit for s in by_trial[t.id]]
    assert pursuit and len(pursuit_samples) >= 3  # ~2 s at 30 fps, every 3rd frame kept
    assert len({(s.target_x, s.target_y) for s in pursuit_samples}) == len(pursuit_samples)
    assert all(s.status == "accepted" for s in pursuit_samples)
    assert len(samples) == int(data(page, "captured"))


def test_camera_denied_explains_and_retry_works(gz, web, webcam):
    with launch_chromium(video=webcam, fake_ui=False) as browser:
        context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)  # no camera permission granted
        page = context.new_page()
        page.goto(web.url + "/")
        page.check("#consent-box")
        page.click("#consent-button")
        page.click("#code-continue")
        page.wait_for_function("document.body.dataset.step === 'camera-problem'")
        assert data(page, "cameraError") == "NotAllowedError"
        assert "did not allow" in page.inner_text("#camera-problem-text")
        assert page.evaluate("document.activeElement.id") == "camera-retry"
        screenshot(page, "collect-camera-denied")

        context.grant_permissions(["camera"], origin=web.url)
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#camera-verdict').dataset.status === 'accepted'")
        assert step(page) == "camera"
        context.close()


def test_validation_dots_are_stored_and_the_finish_page_tells_the_accuracy(gz, worker, web, page):
    from gazelab.schema import ModelArtifact
    from tests.trainer_data import add_samples, fast_params
    from trainer import runs
    from trainer.snapshot import load_snapshot
    add_samples(gz, volunteers=4, samples_per_volunteer=20)  # a model to measure with
    with session_scope(gz.database_url) as db:
        run_id = runs.create_run(db, fast_params(epochs=1), gz.config).id
    assert runs.execute_run(gz.config, run_id) == "done"
    with session_scope(gz.database_url) as db:
        runs.promote(db, db.scalar(select(ModelArtifact.id).where(ModelArtifact.run_id == run_id)))

    fast = FAST.replace("validation=0", "validation=2")
    session_id = consent_and_camera(page, f"{web.url}/?calibration=3&dots=2&{fast}", card_steps=5)
    seen = set()
    answer_letters(page, until=lambda: seen.add(data(page, "phase")) or False)
    wait_finished(page)
    assert "validation" in seen
    page.wait_for_function("document.body.dataset.accuracy", timeout=60_000)
    screenshot(page, "collect-finish-accuracy", full_page=True)
    assert data(page, "accuracy") == "shown"
    sentence = page.inner_text("#finish-accuracy")
    assert "On the 2 check dots" in sentence and "pixels on average" in sentence and " cm " in sentence

    trials, samples = session_rows(gz, session_id)
    checks = [t for t in trials if t.kind == "validation"]
    assert len(checks) == 2 and [t.kind for t in trials[-2:]] == ["validation", "validation"]
    check_frames = [s for s in samples if s.trial_id in {t.id for t in checks}]
    with session_scope(gz.database_url) as db:  # landmarks kept; never trained on
        with_landmarks = db.scalar(select(func.count()).select_from(SampleImages).where(
            SampleImages.sample_id.in_([s.id for s in check_frames]), SampleImages.landmarks.is_not(None)))
        snapshot = load_snapshot(db, 64)
    assert check_frames and with_landmarks == sum(s.face_w is not None for s in check_frames) > 0
    assert not set(snapshot.sample_ids) & {s.id for s in check_frames}
    assert "validation" not in set(snapshot.trial_kinds)


def test_server_down_for_10_s_loses_no_frame(gz, web, page):
    session_id = consent_and_camera(page, f"{web.url}/?calibration=0&dots=24&{FAST}&attention=1500")
    answer_letters(page, until=lambda: int(data(page, "done") or 0) >= 3)

    web.stop()
    went_down = time.monotonic()
    done_before = int(data(page, "done"))
    answer_letters(page, until=lambda: time.monotonic() - went_down > 10)
    assert int(data(page, "done")) >= done_before + 5, "the dots must go on while the server is down"
    assert int(data(page, "queue")) > 0
    page.wait_for_function("!document.getElementById('dot').hidden")
    assert "connection lost" in page.inner_text("#progress-text")
    screenshot(page, "collect-server-down")
    restarted = WebServer(gz, port=web.port).start()
    try:
        answer_letters(page)
        wait_finished(page)
        assert int(data(page, "retries")) > 0
        assert data(page, "failed") == "0" and data(page, "queue") == "0"
        _, samples = session_rows(gz, session_id)
        assert len(samples) == int(data(page, "captured")) > 0
        assert len({s.client_frame_id for s in samples}) == len(samples)
    finally:
        restarted.stop()


def test_delete_page_removes_the_volunteer(gz, web, page):
    import requests
    created = requests.post(web.url + "/api/v1/sessions", json={
        "consent": True, "consent_version": "2026-11", "screen_width": 1280,
        "screen_height": 720, "device_pixel_ratio": 1}, timeout=10).json()
    page.goto(web.url + "/delete")
    page.fill("#deletion-code", created["volunteer_id"] + ".wrong-token")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('delete-result').textContent")
    assert "found nothing" in page.inner_text("#delete-result")

    page.fill("#deletion-code", created["deletion_code"])
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.deleted === '1'")
    screenshot(page, "collect-delete-page")
    assert "deleted 1 session" in page.inner_text("#delete-result")
    with session_scope(gz.database_url) as db:
        assert db.get(Volunteer, created["volunteer_id"]) is None
        assert db.get(CollectionSession, created["session_id"]) is None


def test_reload_mid_task_warns_then_resumes_the_same_session(gz, web, page):
    """A reload asks first (pictures are queued / the task runs); after it the page offers to
    carry on, and every picture lands in the one session, which then finishes."""
    url = f"{web.url}/?calibration=0&dots=8&{FAST}"
    session_id = consent_and_camera(page, url)
    answer_letters(page, until=lambda: int(data(page, "done") or 0) >= 2)
    dialogs = []

    def leave(dialog) -> None:
        dialogs.append(dialog.type)
        dialog.accept()
    page.on("dialog", leave)
    page.reload()
    page.wait_for_function("document.body.dataset.step === 'resume'")
    assert dialogs == ["beforeunload"]
    assert data(page, "sessionId") == session_id and data(page, "resumed") == "1"
    screenshot(page, "collect-resume")
    page.click("#resume-continue")
    page.wait_for_function("document.querySelector('#camera-verdict').dataset.status === 'accepted'")
    page.click("#camera-continue")
    page.wait_for_function("document.body.dataset.step === 'intro'")   # no second set-up
    page.click("#intro-start")
    page.wait_for_function("document.body.dataset.step === 'task'")
    answer_letters(page)
    wait_finished(page)
    with session_scope(gz.database_url) as db:
        sessions = db.scalars(select(CollectionSession)).all()
        assert [s.id for s in sessions] == [session_id] and sessions[0].status == "finished"
        assert db.scalar(select(func.count()).select_from(Sample)) >= 8
    assert page.evaluate("sessionStorage.getItem('gazelab.session')") is None


def test_consent_page_states_duration_and_retention(gz, web, page):
    page.goto(web.url + "/")
    minutes = int(page.inner_text("#minutes"))
    c = gz.config.collection
    task_s = (9 + c.dots_per_session) * (c.fixation_delay_ms + c.capture_window_ms + c.attention_ms) / 1000
    assert minutes == max(1, -(-(task_s + 90) // 60)) and minutes < 10
    assert "as long as the project runs" in page.inner_text("#retention")


def test_web_worker_killed_and_redis_restarted_mid_task_lose_no_frame(gz, web, page, embedded_redis):
    """During the dot task one gunicorn worker is killed (its master starts another) and the
    embedded Redis restarts: the page's retries store every captured frame exactly once."""
    import os
    import signal

    from gazelab_cli.benchmarks.faults import _children
    session_id = consent_and_camera(page, f"{web.url}/?calibration=0&dots=14&{FAST}")
    answer_letters(page, until=lambda: int(data(page, "done") or 0) >= 3)
    os.kill(_children(web.process.pid)[0], signal.SIGKILL)
    answer_letters(page, until=lambda: int(data(page, "done") or 0) >= 6)
    embedded_redis.restart(down_s=1.0)
    answer_letters(page)
    wait_finished(page)
    captured = int(data(page, "captured"))
    with session_scope(gz.database_url) as db:
        frame_ids = db.scalars(select(Sample.client_frame_id).where(Sample.session_id == session_id)).all()
    assert captured >= 14 and len(frame_ids) == captured == len(set(frame_ids))
    assert data(page, "failed") == "0"
