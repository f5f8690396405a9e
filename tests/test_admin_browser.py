"""The admin dashboard in a real browser (Playwright + Debian chromium) against a real
gunicorn server and, for training, a real Celery worker. Screenshots go to test-artifacts/."""
from __future__ import annotations

import io
import re
import zipfile

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from gazelab.db import session_scope
from gazelab.schema import Sample
from tests.support import wait_until
from tests.browser import VIEWPORT, launch_chromium, screenshot, sim_webcam_y4m
from tests.test_admin import ADMIN, PASSWORD, counts_by_status, make_admin, seed


def log_in(page: Page, base_url: str, target: str = "/admin/") -> None:
    page.goto(base_url + target)
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.fill("input[name=name]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".topbar nav")).to_be_visible()


def stat(page: Page, key: str) -> int:
    return int(page.locator(f'[data-count="{key}"] .value').inner_text())


def test_login_review_reject_session_counts_and_export(gz, web, worker, tmp_path):
    session_ids = seed(gz.database_url, volunteers=2, samples_each=12)
    make_admin(gz.database_url)
    with launch_chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, bypass_csp=True)
        page = context.new_page()

        # unauthenticated: pages go to the login form, the JSON API answers 401
        assert page.request.get(web.url + "/admin/api/runs/1").status == 401
        page.goto(web.url + "/admin/review")
        expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/review"))
        page.fill("input[name=name]", ADMIN)
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        expect(page.locator(".flash.error")).to_have_text("Wrong name or password.")
        screenshot(page, "admin-login-failed")

        log_in(page, web.url)
        expect(page.locator("h1")).to_have_text("Dataset overview")
        assert (stat(page, "accepted"), stat(page, "rejected")) == (20, 4)
        coverage = page.locator("img#coverage")
        expect(coverage).to_be_visible()
        page.wait_for_function("document.querySelector('img#coverage').naturalWidth > 300")
        screenshot(page, "admin-overview", full_page=True)

        # review: filter one session, reject it as a whole with a reason
        page.goto(f"{web.url}/admin/review?session={session_ids[1]}")
        expect(page.locator("h1 small")).to_have_text("(newest first)")
        expect(page.locator(".sample")).to_have_count(12)
        page.wait_for_function("[...document.querySelectorAll('.sample img')].every(i => i.complete && i.naturalWidth === 64)")
        screenshot(page, "admin-review-session", full_page=True)
        page.fill("#session-form input[name=reason]", "looked away")
        page.click("#session-form button[value=reject]")
        expect(page.locator(".flash").first).to_contain_text("12 sample(s) set to rejected")
        expect(page.locator(".sample.rejected")).to_have_count(12)
        screenshot(page, "admin-review-after-reject", full_page=True)
        page.click("text=Overview")
        assert (stat(page, "accepted"), stat(page, "rejected")) == (10, 14)
        expect(page.locator("#reasons")).to_contain_text("review:looked_away")

        # one sample, then accept it back, through the grid's checkboxes
        page.goto(f"{web.url}/admin/review?session={session_ids[0]}&status=accepted")
        page.locator(".sample input[type=checkbox]").nth(0).check()
        page.locator(".sample input[type=checkbox]").nth(1).check()
        page.click("#samples-form button[value=reject]")
        expect(page.locator(".flash").first).to_contain_text("2 sample(s) set to rejected")
        assert counts_by_status(gz.database_url) == {"accepted": 8, "rejected": 16}

        # a state-changing post without the CSRF token (same cookies) is refused
        response = page.request.post(web.url + "/admin/review/session",
                                     form={"session_id": session_ids[0], "decision": "reject"})
        assert response.status == 400 and response.json()["error"] == "csrf_failed"
        assert counts_by_status(gz.database_url) == {"accepted": 8, "rejected": 16}

        # export: a worker writes the zip; the page follows it, then downloads the file
        page.click("text=Export")
        page.click("#start-export")
        link = page.locator("a.download").first
        expect(link).to_be_visible(timeout=60_000)   # the page refreshes itself until done
        screenshot(page, "admin-export")
        with page.expect_download() as info:
            link.click()
        archive = zipfile.ZipFile(io.BytesIO(open(info.value.path(), "rb").read()))
        rows = archive.read("positions.csv").decode().strip().splitlines()
        assert rows[0] == "id,x,y,head_angle,screen_width,screen_height,session,volunteer,yaw,pitch"
        assert len(rows) == 1 + 8
        assert len([n for n in archive.namelist() if n.startswith("l_eye/")]) == 8

        page.click(".logout button")
        page.goto(web.url + "/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login"))
        context.close()


def test_retrain_progress_figures_promote_outliers_and_live_dot(gz, worker, web, tmp_path_factory):
    from trainer.synthetic import insert_dataset
    with session_scope(gz.database_url) as db:
        insert_dataset(db, volunteers=4, samples_per_volunteer=40, seed=3)
    make_admin(gz.database_url)
    camera = sim_webcam_y4m(tmp_path_factory.getbasetemp())
    with launch_chromium(video=camera) as browser:
        page = browser.new_page(viewport=VIEWPORT, bypass_csp=True)
        log_in(page, web.url, "/admin/runs")

        # queue a tiny retrain from the form; the run page follows it to the end
        page.fill("input[name=epochs]", "3")
        page.fill("input[name=batch_size]", "32")
        page.click("#train-form button[type=submit]")
        expect(page).to_have_url(re.compile(r"/admin/runs/\d+$"))
        run_id = int(page.url.rsplit("/", 1)[1])
        seen = set()
        for _ in range(600):  # the page polls the JSON endpoint and redraws as epochs finish
            seen.add(page.locator("#run-status").inner_text())
            if "done" in seen or "failed" in seen:
                break
            if "epoch 1 of 3" in page.locator("#progress-text").inner_text():
                screenshot(page, "admin-run-progress")
            page.wait_for_timeout(250)
        expect(page.locator("#run-status")).to_have_text("done", timeout=30_000)
        assert seen & {"queued", "running"}, seen
        page.wait_for_function("document.querySelector('#fig-error_heatmap') && "
                               "document.querySelector('#fig-error_heatmap').naturalWidth > 300")
        expect(page.locator("table.metrics").first).to_contain_text("ridge baseline")
        # the form's default folds cross-validate: both regimes beside the peers, both heatmaps
        expect(page.locator("#crossval")).to_contain_text("WebGazer-style")
        expect(page.locator("#crossval")).to_contain_text("predict the centre")
        expect(page.locator("#fig-error_heatmap_calibrated_9")).to_be_visible()
        screenshot(page, "admin-run-done", full_page=True)

        # promote; the runs table marks it active
        page.click("#promote")
        expect(page.locator(".flash").first).to_contain_text(f"run {run_id} is now active")
        page.click("text=Training")
        expect(page.locator(f'tr[data-run="{run_id}"]')).to_contain_text("active")
        screenshot(page, "admin-runs")

        # promotion queued outlier scoring on the worker: every sample gets its error
        def scored() -> int:
            with session_scope(gz.database_url) as db:
                return db.scalar(select(func.count()).select_from(Sample)
                                 .where(Sample.model_error_px.is_not(None)))
        wait_until(lambda: scored() == 160, 60, 0.5, f"outlier scoring\n{worker.log()[-2000:]}")

        # with an active model the review page can queue outlier scoring again
        page.goto(web.url + "/admin/review")
        page.click("text=Flag model outliers")
        expect(page.locator(".flash").first).to_contain_text("Scoring every sample under the active model")

        # live tracking from the (fake) webcam: 9 calibration dots first, then a dot with an
        # expected-error radius through the personal calibration they fitted
        page.click("text=Live")
        page.click("#start")
        expect(page.locator("#live-status")).to_contain_text("Calibrating: look at the yellow dot", timeout=30_000)
        expect(page.locator("#live-status")).to_contain_text("expected error", timeout=60_000)
        assert page.evaluate("document.body.dataset.calibration") in ("fitted", "identity")
        assert "Tracking (" in page.inner_text("#live-status")
        page.wait_for_timeout(800)
        screenshot(page, "admin-live")


def test_run_page_redraws_progress_then_shows_figures_and_compare(gz, web):
    """The run page's polling and canvas, driven by progress rows written as a worker would."""
    from gazelab.schema import RunFigure, TrainingRun
    from tests.test_admin import insert_finished_run
    first = insert_finished_run(gz.database_url, 80.0)
    with session_scope(gz.database_url) as db:
        run = TrainingRun(status="running", params={"epochs": 4}, progress={"epoch": 0, "epochs": 4, "history": []})
        db.add(run)
        db.flush()
        run_id = run.id
    make_admin(gz.database_url)
    with launch_chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT, bypass_csp=True)
        log_in(page, web.url, f"/admin/runs/{run_id}")
        expect(page.locator("#run-status")).to_have_text("running")
        blank = page.evaluate("document.getElementById('curves').toDataURL()")
        history = []
        for epoch in range(1, 4):
            history.append({"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.3 / epoch,
                            "val_error_px": 300 / epoch})
            with session_scope(gz.database_url) as db:
                db.get(TrainingRun, run_id).progress = {
                    "epoch": epoch, "epochs": 4, "val_error_px": 300 / epoch, "eta_s": 10 * (4 - epoch),
                    "history": list(history)}
            expect(page.locator("#progress-text")).to_contain_text(f"epoch {epoch} of 4")
        assert page.evaluate("document.getElementById('curves').toDataURL()") != blank
        expect(page.locator("#progress-text")).to_contain_text("validation error 100.0 px")
        screenshot(page, "admin-run-live-progress")

        with session_scope(gz.database_url) as db:
            done = db.get(TrainingRun, run_id)
            source = db.get(TrainingRun, first)
            done.status, done.metrics = "done", source.metrics
            for figure in db.query(RunFigure).filter_by(run_id=first):
                db.add(RunFigure(run_id=run_id, name=figure.name, png=figure.png))
        expect(page.locator("#run-status")).to_have_text("done")  # the page reloads itself
        page.wait_for_function("document.querySelector('#fig-error_heatmap')?.naturalWidth > 300")
        screenshot(page, "admin-run-finished", full_page=True)

        page.select_option("select[name=b]", str(first))
        page.click("text=Compare")
        expect(page.locator("h1")).to_have_text(f"Compare runs #{run_id} and #{first}")
        page.wait_for_function("[...document.querySelectorAll('img.figure')].every(i => i.naturalWidth > 300)")
        expect(page.locator("img.figure")).to_have_count(8)
        screenshot(page, "admin-compare")
