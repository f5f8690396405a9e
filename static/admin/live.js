// Live tracking: send webcam frames to the server, draw the smoothed predicted gaze point.
(() => {
  const script = document.currentScript;
  const url = script.dataset.url;
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

  async function sendFrame() {
    if (!running) return;
    grab.width = video.videoWidth; grab.height = video.videoHeight;
    if (grab.width) {
      grab.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise(r => grab.toBlob(r, "image/jpeg", 0.9));
      const body = new FormData();
      body.append("frame", blob, "frame.jpg");
      body.append("screen_width", String(stage.width));
      body.append("screen_height", String(stage.height));
      try {
        const response = await fetch(url, {method: "POST", body, headers: {"X-CSRF-Token": csrf}});
        const result = await response.json();
        if (!response.ok) statusEl.textContent = result.message;
        else if (!result.found) statusEl.textContent = result.message || "No face found.";
        else {
          points.push({x: result.x, y: result.y});
          points = points.slice(-windowLength);
          radius = result.radius;
          statusEl.textContent = `Tracking · expected error ${Math.round(radius)} px`;
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
    video.onloadeddata = sendFrame;
  });
  document.getElementById("stop").addEventListener("click", () => {
    running = false; points = [];
    if (stream) stream.getTracks().forEach(t => t.stop());
    statusEl.textContent = "Camera off."; draw();
  });
  addEventListener("resize", () => { resize(); draw(); });
  resize(); draw();
})();
