// Live tracking: a 9-dot calibration first (its frames fit a personal calibration of the
// active model on the server, which this page keeps and sends with every frame), then send
// webcam frames to the server and draw the smoothed predicted gaze point.
(() => {
  const script = document.currentScript;
  const url = script.dataset.url;
  const calibrationUrl = script.dataset.calibrationUrl;
  const DOTS = [0.1, 0.5, 0.9].flatMap(y => [0.1, 0.5, 0.9].map(x => [x, y]));
  const SETTLE_MS = 700, FRAMES_PER_DOT = 3, FRAME_GAP_MS = 150;
  let calibration = null, calibrated = "not calibrated";
  const windowLength = Number(script.dataset.window) || 5;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const video = document.getElementById("camera");
  const stage = document.getElementById("stage");
  const statusEl = document.getElementById("live-status");
  const grab = document.createElement("canvas");
  let points = [], radius = 0, running = false, stream = null;

  function resize() { stage.width = innerWidth; stage.height = innerHeight; }

  function draw() {
    const ctx = stage.getContext("2d");
    ctx.fillStyle = "#222"; ctx.fillRect(0, 0, stage.width, stage.height);
    if (!points.length) return;
    const x = points.reduce((s, p) => s + p.x, 0) / points.length;
    const y = points.reduce((s, p) => s + p.y, 0) / points.length;
    ctx.fillStyle = "rgba(95, 176, 255, 0.25)";
    ctx.beginPath(); ctx.arc(x, y, Math.max(radius, 8), 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#5fb0ff";
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill();
  }

  async function grabFrame() {
    grab.width = video.videoWidth; grab.height = video.videoHeight;
    if (!grab.width) return null;
    grab.getContext("2d").drawImage(video, 0, 0);
    return new Promise(r => grab.toBlob(r, "image/jpeg", 0.9));
  }

  function drawTarget(x, y) {
    const ctx = stage.getContext("2d");
    ctx.fillStyle = "#222"; ctx.fillRect(0, 0, stage.width, stage.height);
    ctx.fillStyle = "#ffd24a";
    ctx.beginPath(); ctx.arc(x, y, 12, 0, 2 * Math.PI); ctx.fill();
  }

  const sleep = ms => new Promise(r => setTimeout(r, ms));

  /** Look at each of 9 dots; their frames fit this person's calibration on the server. */
  async function calibrate() {
    const body = new FormData(), targets = [];
    for (const [index, [fx, fy]] of DOTS.entries()) {
      if (!running) return;
      const x = fx * stage.width, y = fy * stage.height;
      statusEl.textContent = `Calibrating: look at the yellow dot (${index + 1} of ${DOTS.length})`;
      drawTarget(x, y);
      await sleep(SETTLE_MS);
      for (let k = 0; k < FRAMES_PER_DOT; k += 1) {
        const blob = await grabFrame();
        if (blob) { body.append("frame", blob, "frame.jpg"); targets.push([x, y, index]); }
        await sleep(FRAME_GAP_MS);
      }
    }
    body.append("targets", JSON.stringify(targets));
    body.append("screen_width", String(stage.width));
    body.append("screen_height", String(stage.height));
    try {
      const response = await fetch(calibrationUrl, {method: "POST", body, headers: {"X-CSRF-Token": csrf}});
      const result = await response.json();
      calibration = response.ok && result.calibration ? JSON.stringify(result.calibration) : null;
      calibrated = calibration ? "calibrated" : "calibration kept the model as it is";
    } catch (e) { calibrated = "not calibrated (server unreachable)"; }
    document.body.dataset.calibration = calibration ? "fitted" : "identity";
  }

  async function sendFrame() {
    if (!running) return;
    const blob = await grabFrame();
    if (blob) {
      const body = new FormData();
      body.append("frame", blob, "frame.jpg");
      if (calibration) body.append("calibration", calibration);
      body.append("screen_width", String(stage.width));
      body.append("screen_height", String(stage.height));
      try {
        const response = await fetch(url, {method: "POST", body, headers: {"X-CSRF-Token": csrf}});
        const result = await response.json();
        if (response.status === 409 && result.error === "stale_calibration") {
          // the active model changed since calibrating: track it uncalibrated until Start again
          calibration = null; calibrated = "not calibrated: the model changed, press Start to calibrate";
          document.body.dataset.calibration = "identity";
        } else if (!response.ok) statusEl.textContent = result.message;
        else if (!result.found) statusEl.textContent = result.message || "No face found.";
        else {
          points.push({x: result.x, y: result.y});
          points = points.slice(-windowLength);
          radius = result.radius;
          statusEl.textContent = `Tracking (${calibrated}) · expected error ${Math.round(radius)} px`;
          draw();
        }
      } catch (e) { statusEl.textContent = "Server unreachable."; }
    }
    setTimeout(sendFrame, 50);
  }

  document.getElementById("start").addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}});
    } catch (e) { statusEl.textContent = "Camera refused: " + e.message; return; }
    video.srcObject = stream; running = true; statusEl.textContent = "Starting…";
    video.onloadeddata = async () => { await calibrate(); sendFrame(); };
  });
  document.getElementById("stop").addEventListener("click", () => {
    running = false; points = [];
    if (stream) stream.getTracks().forEach(t => t.stop());
    statusEl.textContent = "Camera off."; draw();
  });
  addEventListener("resize", () => { resize(); draw(); });
  resize(); draw();
})();
