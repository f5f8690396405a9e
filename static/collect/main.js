// The volunteer page: consent → camera check → screen set-up → 9-point calibration →
// dot task → validation (check) dots → (pursuit) → finish. The session is created at consent with the window's size;
// the screen set-up step PATCHes the fullscreen size and mm per px before any frame is stored. State is mirrored on <body> as data attributes
// (data-step, data-queue, data-captured, data-uploaded, data-failed, data-session-id)
// so that people and tests can see what is going on.
//
// Test knobs (URL query; defaults come from the server's settings): dots, fixation,
// capture, fps, attention, pursuit (0/1), pursuit_seconds, calibration (points, 0-9),
// validation (check dots, 0 = none).

import { SessionApi, createSession } from "./api.js";
import { FrameGrabber, closeCamera, explainCameraError, openCamera } from "./camera.js";
import { drawCoverage } from "./coverage.js";
import { UploadQueue } from "./queue.js";
import { DotTask, Interrupted } from "./task.js";

const CARD_WIDTH_MM = 85.6;
const CARD_HEIGHT_MM = 53.98;
const CHECK_INTERVAL_MS = 500;
const RESIZE_GRACE_MS = 800;
const OFFLINE_NOTE_MS = 5000;
// The session survives a reload or a closed tab (until its token expires on the server):
// what is needed to carry on is kept in this tab's sessionStorage.
const STORED_SESSION = "gazelab.session";

const $ = (id) => document.getElementById(id);
const body = document.body;
const state = {
  api: null, created: null, resumed: false, deletionCode: null, settings: null, stream: null, grabber: null, task: null,
  wantFullscreen: false, ignoreResizeUntil: 0, captured: 0, accepted: 0, mmPerPx: null, screen: null,
};
const queue = new UploadQueue({
  onChange: (q) => {
    body.dataset.queue = q.pending;
    body.dataset.uploaded = q.done;
    body.dataset.failed = q.failed;
    body.dataset.retries = q.retries;
  },
});

// ---- steps -------------------------------------------------------------------------

function show(step) {
  body.dataset.step = step;
  for (const section of document.querySelectorAll(".step")) {
    section.hidden = section.dataset.for !== step;
  }
  // Focus the step's main button when it has one marked, else its heading (read first by
  // screen readers), so the keyboard always starts at the right place.
  const section = document.querySelector(`.step[data-for="${step}"]`);
  const first = section && (section.querySelector("[data-autofocus]") || section.querySelector("h1"));
  if (first && step !== "task") {
    if (first.tagName === "H1") first.tabIndex = -1;
    first.focus({ preventScroll: true });
  }
}

function fail(message) {
  $("error-text").textContent = message;
  show("error");
}

function readOverrides(settings) {
  const params = new URLSearchParams(location.search);
  const names = {
    dots: "dots_per_session", fixation: "fixation_delay_ms", capture: "capture_window_ms",
    fps: "capture_fps", attention: "attention_ms", pursuit_seconds: "pursuit_seconds",
    calibration: "calibration_points", validation: "validation_points",
  };
  const out = { calibration_points: 9, ...settings };
  for (const [param, key] of Object.entries(names)) {
    if (params.has(param) && Number.isFinite(Number(params.get(param)))) out[key] = Number(params.get(param));
  }
  if (params.has("pursuit")) out.pursuit = ["1", "true", "yes"].includes(params.get("pursuit"));
  return out;
}

// ---- 1. consent ----------------------------------------------------------------------

function windowScreen() {
  return {
    screen_width: Math.round(window.innerWidth),
    screen_height: Math.round(window.innerHeight),
    device_pixel_ratio: window.devicePixelRatio || 1,
  };
}

$("consent-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!$("consent-box").checked) {
    $("consent-error").textContent = "Please tick the box to agree first.";
    return;
  }
  if (!state.api && !(await createVolunteerSession())) return;
  showDeletionCode();
});

// ---- 1b. the deletion code, before any picture is taken ----------------------------------

function showDeletionCode() {
  $("early-code").textContent = state.deletionCode;
  show("code");
}

$("code-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(state.deletionCode);
    $("code-note").textContent = "Copied.";
  } catch {
    $("code-note").textContent = "Copying is not allowed here: please select the code and copy it.";
  }
});

$("code-download").addEventListener("click", () => {
  const text = `GazeLab deletion code (keep it to have your data deleted at ${location.origin}/delete):\n${state.deletionCode}\n`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.download = "gazelab-deletion-code.txt";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  $("code-note").textContent = "Saved as gazelab-deletion-code.txt.";
});

$("code-continue").addEventListener("click", startCameraCheck);

// ---- resuming after a reload ----------------------------------------------------------------

function remember() {
  sessionStorage.setItem(STORED_SESSION, JSON.stringify({
    created: state.created, screen: state.screen, mmPerPx: state.mmPerPx,
  }));
}

function forget() {
  sessionStorage.removeItem(STORED_SESSION);
}

/** A session this tab started and the server still takes data for: offer to carry on. */
async function offerResume() {
  let stored;
  try { stored = JSON.parse(sessionStorage.getItem(STORED_SESSION) || "null"); } catch { stored = null; }
  if (!stored || !stored.created) return false;
  const api = new SessionApi(stored.created);
  try {
    const summary = await api.summary();
    if (summary.status !== "active") { forget(); return false; }
  } catch (error) {
    if (error instanceof TypeError) return false;   // offline: start over is the safe default
    forget();                                       // expired or deleted
    return false;
  }
  adoptSession(stored.created, stored.screen);
  state.mmPerPx = stored.mmPerPx ?? null;
  state.resumed = true;
  body.dataset.resumed = "1";
  $("resume-code").textContent = state.deletionCode;
  show("resume");
  return true;
}

$("resume-continue").addEventListener("click", startCameraCheck);
$("resume-new").addEventListener("click", () => { forget(); location.reload(); });

// Leaving while the task runs or pictures wait to be sent: the browser asks first.
window.addEventListener("beforeunload", (event) => {
  if (body.dataset.step === "task" || queue.pending > 0) {
    event.preventDefault();
    event.returnValue = "";
  }
});

async function createVolunteerSession() {
  $("consent-error").textContent = "";
  $("consent-button").disabled = true;
  try {
    const screen = windowScreen();
    const created = await createSession({
      consent_version: body.dataset.consentVersion, ...screen,
      user_agent: navigator.userAgent.slice(0, 500),
    });
    adoptSession(created, { width: screen.screen_width, height: screen.screen_height });
    remember();
    return true;
  } catch (error) {
    $("consent-error").textContent = `We could not start a session: ${error.message}. Please try again.`;
    return false;
  } finally {
    $("consent-button").disabled = false;
  }
}

function adoptSession(created, screen) {
  state.created = created;
  state.api = new SessionApi(created);
  state.deletionCode = created.deletion_code;
  state.settings = readOverrides(created.settings);
  state.screen = screen;
  body.dataset.sessionId = created.session_id;
}

// ---- 2. camera check -------------------------------------------------------------------

async function startCameraCheck() {
  show("camera");
  $("camera-continue").disabled = true;
  setVerdict("waiting", "Starting the camera…");
  try {
    closeCamera(state.stream);
    state.stream = await openCamera();
  } catch (error) {
    $("camera-problem-text").textContent = explainCameraError(error);
    body.dataset.cameraError = error.name || "Error";
    show("camera-problem");
    return;
  }
  delete body.dataset.cameraError;
  $("preview").srcObject = state.stream;
  $("camera").srcObject = state.stream;
  state.grabber = new FrameGrabber($("camera"));
  checkLoop();
}

$("camera-retry").addEventListener("click", startCameraCheck);

function setVerdict(status, message) {
  const verdict = $("camera-verdict");
  verdict.dataset.status = status;
  verdict.textContent = message;
}

async function checkLoop() {
  while (body.dataset.step === "camera") {
    const started = performance.now();
    if (state.grabber.ready) {
      try {
        const verdict = await state.api.checkFrame(await state.grabber.grab());
        if (body.dataset.step !== "camera") break;
        setVerdict(verdict.status, verdict.message || (verdict.status === "accepted" ? "Face found" : "Adjust your position"));
        drawFaceBox(verdict.face_box);
        const wasDisabled = $("camera-continue").disabled;
        $("camera-continue").disabled = verdict.status !== "accepted";
        if (wasDisabled && verdict.status === "accepted") $("camera-continue").focus();
      } catch (error) {
        setVerdict("error", error instanceof TypeError
          ? "We cannot reach the server — trying again…" : `The check failed: ${error.message}`);
      }
    }
    await new Promise((r) => setTimeout(r, Math.max(0, CHECK_INTERVAL_MS - (performance.now() - started))));
  }
}

function drawFaceBox(box) {
  const element = $("face-box");
  if (!box) { element.hidden = true; return; }
  const [x, y, w, h] = box;
  Object.assign(element.style, {
    left: `${(x / 640) * 100}%`, top: `${(y / 480) * 100}%`,
    width: `${(w / 640) * 100}%`, height: `${(h / 480) * 100}%`,
  });
  element.hidden = false;
}

// ---- 3. screen set-up ----------------------------------------------------------------

async function enterFullscreen() {
  if (document.fullscreenElement || !document.documentElement.requestFullscreen) {
    state.wantFullscreen = Boolean(document.fullscreenElement);
    return;
  }
  try {
    await document.documentElement.requestFullscreen({ navigationUI: "hide" });
    state.wantFullscreen = true;
  } catch {
    state.wantFullscreen = false;  // refused or unsupported: the dots use the window
  }
  state.ignoreResizeUntil = performance.now() + RESIZE_GRACE_MS;
}

// This click is the user gesture that a fullscreen request needs, so it is made right here.
$("camera-continue").addEventListener("click", () => {
  enterFullscreen();
  if (state.resumed) { show("intro"); return; }   // the screen was set up before the reload
  show("setup");
  setCardWidth(cardWidth);
});

let cardWidth = 280;
function setCardWidth(width) {
  cardWidth = Math.max(100, Math.min(1000, Math.round(width)));
  const rect = $("card-rect");
  rect.style.width = `${cardWidth}px`;
  rect.style.height = `${(cardWidth * CARD_HEIGHT_MM) / CARD_WIDTH_MM}px`;
  rect.setAttribute("aria-valuenow", cardWidth);
  $("card-readout").textContent = `${cardWidth} px wide — ${(CARD_WIDTH_MM / cardWidth).toFixed(3)} mm per pixel`;
}

$("card-rect").addEventListener("keydown", (event) => {
  const step = event.shiftKey ? 10 : 1;
  if (event.key === "ArrowRight" || event.key === "ArrowUp") setCardWidth(cardWidth + step);
  else if (event.key === "ArrowLeft" || event.key === "ArrowDown") setCardWidth(cardWidth - step);
  else return;
  event.preventDefault();
});

$("card-handle").addEventListener("pointerdown", (event) => {
  const startX = event.clientX;
  const startWidth = cardWidth;
  const move = (e) => setCardWidth(startWidth + (e.clientX - startX));
  const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
  event.preventDefault();
});

$("setup-measured").addEventListener("click", () => finishSetup(CARD_WIDTH_MM / cardWidth));
$("setup-skip").addEventListener("click", () => finishSetup(null));

async function finishSetup(mmPerPx) {
  $("setup-error").textContent = "";
  state.mmPerPx = mmPerPx;
  try {
    await saveScreen();
  } catch (error) {
    $("setup-error").textContent = `We could not save your screen size: ${error.message}. Please try again.`;
    return;
  }
  show("intro");
}

/** Store the window's current size (full screen by now) and mm per px with the session;
 *  allowed until the first frame is stored. */
async function saveScreen() {
  const screen = windowScreen();
  await state.api.updateScreen({ ...screen, mm_per_px: state.mmPerPx });
  state.screen = { width: screen.screen_width, height: screen.screen_height };
  body.dataset.screen = `${screen.screen_width}x${screen.screen_height}`;
  remember();
}


// ---- 4-6. calibration, dots, pursuit ------------------------------------------------

$("intro-start").addEventListener("click", runTask);

async function fetchTargets(kind, n) {
  const targets = [];
  for (let attempt = 0; targets.length < n && attempt < 20; attempt += 1) {
    const batch = await state.api.nextTargets(kind, Math.min(n - targets.length, 100));
    if (!batch.targets.length) break;
    targets.push(...batch.targets);
    if (kind === "calibration") break;
  }
  return targets.slice(0, n);
}

async function runTask() {
  const s = state.settings;
  // back to full screen if it was left since the set-up; a window that changed size since
  // then is stored again, so that every target fits it (no frame is stored yet)
  if (state.wantFullscreen && !document.fullscreenElement) await enterFullscreen();
  let calibration, dots, checks, glidePoints;
  try {
    if (window.innerWidth !== state.screen.width || window.innerHeight !== state.screen.height) {
      // after a resume with pictures stored, the session keeps its screen (the server says 409)
      await saveScreen().catch((error) => { if (!(state.resumed && error.status === 409)) throw error; });
    }
    calibration = (await fetchTargets("calibration", 9)).slice(0, s.calibration_points);
    dots = await fetchTargets("collection", s.dots_per_session);
    checks = s.validation_points ? await fetchTargets("validation", s.validation_points) : [];
    glidePoints = s.pursuit ? await fetchTargets("collection", Math.ceil(s.pursuit_seconds * 2) + 2) : [];
  } catch (error) {
    fail(`We could not prepare the dots (${error.message}). Please start again.`);
    return;
  }
  state.task = new DotTask({
    stage: $("stage"), dot: $("dot"), letter: $("attention-letter"), grabber: state.grabber,
    api: state.api, queue, settings: s, onProgress: showProgress,
    onCapture: (n) => { state.captured += n; body.dataset.captured = state.captured; },
    onFrame: (result) => {
      if (result && result.status === "accepted") { state.accepted += 1; body.dataset.accepted = state.accepted; }
    },
  });
  show("task");
  state.ignoreResizeUntil = performance.now() + RESIZE_GRACE_MS;
  state.task.startBackgroundDrift();
  try {
    body.dataset.phase = "calibration";
    await state.task.runDots("calibration", calibration);
    body.dataset.phase = "collection";
    await state.task.runDots("collection", dots);
    if (checks.length) {  // check dots: never trained on, they measure the tracker for this person
      body.dataset.phase = "validation";
      await state.task.runDots("validation", checks);
    }
    if (s.pursuit && glidePoints.length > 1) {
      body.dataset.phase = "pursuit";
      await state.task.runPursuit(glidePoints);
    }
  } catch (error) {
    if (!(error instanceof Interrupted)) { fail(`The dots stopped: ${error.message}`); return; }
  } finally {
    state.task.stopBackgroundDrift();
  }
  finish();
}

function formatTimeLeft(ms) {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `about ${seconds} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

/** Tells the volunteer that pictures wait for the connection (they are kept and sent later). */
function uploadNote() {
  const offline = performance.now() - queue.lastRetryAt < OFFLINE_NOTE_MS && queue.picturesPending > 0;
  return offline ? ` · connection lost, ${queue.picturesPending} pictures wait to be sent` : "";
}

function showProgress({ kind, done, total, msLeft }) {
  const fraction = total ? done / total : 0;
  $("progress-fill").style.width = `${(fraction * 100).toFixed(1)}%`;
  $("progress").setAttribute("aria-valuenow", Math.round(fraction * 100));
  const label = kind === "calibration" ? `Getting started: dot ${Math.min(done + 1, total)} of ${total}`
    : kind === "pursuit" ? "Follow the gliding dot"
    : kind === "validation" ? `Checking how well it works: dot ${Math.min(done + 1, total)} of ${total}`
    : `Dot ${Math.min(done + 1, total)} of ${total}`;
  $("progress-text").textContent = `${label} · ${formatTimeLeft(msLeft)}${uploadNote()}`;
  body.dataset.done = done;
  // keep the label away from the dot: bottom unless the dot is down there
  const stage = $("stage");
  const dotY = Number(stage.dataset.dotY || 0);
  $("progress").classList.toggle("top", dotY > window.innerHeight - 140);
}

function pauseTask(reason) {
  if (!state.task || state.task.paused || body.dataset.step !== "task") return;
  state.task.pause();
  $("pause-text").textContent = reason;
  $("pause-panel").hidden = false;
  body.dataset.paused = "1";
}

async function resumeTask() {
  if (!state.task || !state.task.paused) return;
  if (state.wantFullscreen && !document.fullscreenElement) {
    state.ignoreResizeUntil = performance.now() + 10_000;
    await enterFullscreen();
  }
  if (window.innerWidth < state.screen.width - 2 || window.innerHeight < state.screen.height - 2) {
    $("pause-text").textContent = "The window is smaller than when you started. Please make it full screen "
      + "again (press F11, or Space here) so that every dot fits.";
    return;
  }
  // resize events of the window's own restoring may still be on their way
  state.ignoreResizeUntil = performance.now() + RESIZE_GRACE_MS;
  $("pause-panel").hidden = true;
  delete body.dataset.paused;
  state.task.resume();
}

document.addEventListener("keydown", (event) => {
  if (body.dataset.step !== "task" || !state.task) return;
  if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
    state.task.answer(event.key === "ArrowLeft" ? "L" : "R");
  } else if (event.key === "Escape") {
    pauseTask("Take your time. The dot you were looking at will be shown again.");
  } else if (event.key === " " || event.code === "Space") {
    resumeTask();
  } else {
    return;
  }
  event.preventDefault();
});

document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement && state.wantFullscreen) {
    pauseTask("You left full screen (that is fine). Press Space to go back to full screen and carry on.");
  }
});

window.addEventListener("resize", () => {
  if (performance.now() < state.ignoreResizeUntil) return;
  pauseTask("The window changed size. Press Space to return to full screen and carry on.");
});

// ---- 7. finish ----------------------------------------------------------------------------

async function finish() {
  show("finish");
  closeCamera(state.stream);
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  $("deletion-code").textContent = state.deletionCode;
  const sending = $("finish-sending");
  const tick = setInterval(() => {
    sending.textContent = queue.pending ? `Sending your last pictures… ${queue.picturesPending} to go.` : "";
  }, 250);
  await queue.drained();
  clearInterval(tick);
  sending.textContent = "";
  const summary = await retry(() => state.api.finish());
  forget();
  body.dataset.finished = "1";
  const { accepted = 0, rejected = 0, flagged = 0 } = summary.counts || {};
  $("finish-summary").textContent =
    `We kept ${accepted} of your ${accepted + rejected + flagged} pictures` +
    (flagged ? ` (${flagged} more wait for a second look)` : "") +
    `. You answered ${state.task.results.attentionPassed} of ${state.task.results.trials} letters right.`;
  showAccuracy();
  try {
    const coverage = await state.api.coverage(16, 9);
    drawCoverage($("coverage"), coverage, state.screen.width / state.screen.height);
    body.dataset.coverage = "drawn";
  } catch (error) {
    $("coverage-figure").hidden = true;
    body.dataset.coverage = "none";
  }
}

/** In plain words, how well the tracker followed this volunteer's eyes on the check dots. */
async function showAccuracy() {
  const out = $("finish-accuracy");
  try {
    const a = await state.api.accuracy();
    body.dataset.accuracy = a.available ? "shown" : "none";
    if (!a.available) return;
    const size = a.mean_cm != null ? ` (about ${a.mean_cm.toFixed(1)} cm on your screen` +
      (a.mean_deg != null ? `, ${a.mean_deg.toFixed(1)}° of your view)` : ")") : "";
    out.textContent = `On the ${a.dots} check dots at the end, the tracker followed your eyes to within ` +
      `${Math.round(a.mean_px)} pixels on average${size}. ` +
      (a.passed ? "That is good enough to use for you." : "That is less precise than we would like: thank you all the same, your pictures still help.");
  } catch (error) {
    body.dataset.accuracy = "error";
  }
}

async function retry(call, attempts = 10) {
  for (let i = 1; ; i += 1) {
    try { return await call(); } catch (error) {
      if (i >= attempts || !(error instanceof TypeError || error.retryable)) throw error;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

$("delete-now").addEventListener("click", async () => {
  const button = $("delete-now");
  if (!button.dataset.confirm) {
    button.dataset.confirm = "1";
    button.textContent = "Press again to delete everything — this cannot be undone";
    return;
  }
  button.disabled = true;
  try {
    const { deleted } = await state.api.deleteVolunteer();
    $("delete-result").textContent =
      `Done. We deleted ${deleted.sessions} session(s), ${deleted.samples} sample(s) and every picture of you.`;
    body.dataset.deleted = "1";
    forget();
    $("finish-summary").textContent = "Your data is gone from our server. Thank you for taking part.";
    $("coverage-figure").hidden = true;
    $("keep-code").hidden = true;
  } catch (error) {
    button.disabled = false;
    $("delete-result").textContent = `Deleting failed (${error.message}). Please try again or use your code on the deletion page.`;
  }
});

$("start-again").addEventListener("click", () => location.reload());

offerResume().then((resuming) => { if (!resuming) show("consent"); });
