"""The pages work under their real Content-Security-Policy: every script loads and runs,
and Chromium reports no violation."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import VIEWPORT, launch_chromium, sim_webcam_y4m
from tests.test_admin import ADMIN, PASSWORD, make_admin

pytestmark = pytest.mark.browser


def test_pages_run_under_the_content_security_policy(gz, web, tmp_path_factory):
    make_admin(gz.database_url)
    with launch_chromium(video=sim_webcam_y4m(tmp_path_factory.getbasetemp())) as browser:
        page = browser.new_page(viewport=VIEWPORT)   # no bypass: the real policy applies
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(web.url + "/")
        expect(page.locator("body")).to_have_attribute("data-step", "consent")   # main.js ran
        page.check("#consent-box")
        page.click("#consent-button")
        page.click("#code-continue")
        expect(page.locator("body")).to_have_attribute("data-step", "camera", timeout=15_000)
        expect(page.locator("#camera-verdict")).to_have_attribute("data-status", "accepted", timeout=30_000)
        page.goto(web.url + "/delete")
        page.goto(web.url + "/admin/login")
        page.fill("input[name=name]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(web.url + "/admin/")
        page.goto(web.url + "/admin/live")
        assert violations == []
