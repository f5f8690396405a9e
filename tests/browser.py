"""Playwright helpers for browser tests: Debian chromium (headless) with a fake webcam fed
from a Y4M file, and screenshots saved to test-artifacts/.

Test contexts pass `bypass_csp=True`: Playwright's `wait_for_function` evaluates strings in
the page, which our Content-Security-Policy forbids. tests/test_csp_browser.py runs the
pages under the real policy.

    with launch_chromium(video=sim_webcam_y4m(tmp_path_factory.getbasetemp())) as browser:
        page = browser.new_page(viewport=VIEWPORT, bypass_csp=True)
        ...
        screenshot(page, "collect-consent")
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}
BASE_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
             "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]


def chromium_args(video: Path | None = None, fake_ui: bool = True) -> list[str]:
    """Launch flags: a fake camera device (from `video` when given); with `fake_ui` the
    camera permission prompt is answered "allow" automatically."""
    args = list(BASE_ARGS) + ["--use-fake-device-for-media-stream"]
    if fake_ui:
        args.append("--use-fake-ui-for-media-stream")
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    return args


@contextlib.contextmanager
def launch_chromium(video: Path | None = None, fake_ui: bool = True,
                    extra_args: tuple[str, ...] = ()) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=chromium_args(video, fake_ui) + list(extra_args))
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sim_webcam_y4m(directory: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    """The virtual volunteer of `gazelab sim-video` looking at the screen centre (no blinks,
    no lost face), written once into `directory` (pass the test session's base temp dir so
    that every test module shares it); chromium loops the short video."""
    from simulator.video import parse_targets, write_y4m
    path = directory / f"sim-webcam-{seed}-{seconds:g}s.y4m"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_y4m(partial, parse_targets("center", (VIEWPORT["width"], VIEWPORT["height"])),
                  seconds=seconds, seed=seed, screen=(VIEWPORT["width"], VIEWPORT["height"]))
        partial.replace(path)
    return path
