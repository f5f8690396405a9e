// Run page: poll the run's JSON while it is queued or running and redraw the loss curves.
(() => {
  const script = document.currentScript;
  const url = script.dataset.url;
  const canvas = document.getElementById("curves");
  const statusEl = document.getElementById("run-status");
  const progressEl = document.getElementById("progress-text");
  const SERIES = [["train_loss", "#2a6ebb", "train loss"], ["val_loss", "#e0a020", "val loss"]];

  function draw(history) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 36;
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui";
    ctx.fillStyle = "#333";
    if (!history.length) { ctx.fillText("waiting for the first epoch…", pad, h / 2); return; }
    const values = history.flatMap(p => SERIES.map(([k]) => p[k]).filter(v => Number.isFinite(v)));
    const lo = Math.min(...values), hi = Math.max(...values) || 1;
    const minEpoch = Math.min(...history.map(p => p.epoch));
    const maxEpoch = Math.max(...history.map(p => p.epoch));
    const x = e => pad + 6 + (w - 2 * pad - 12) * ((e - minEpoch) / ((maxEpoch - minEpoch) || 1));
    const y = v => h - pad - (h - 2 * pad) * ((v - lo) / ((hi - lo) || 1));
    ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(pad, pad / 2); ctx.lineTo(pad, h - pad); ctx.lineTo(w - pad / 2, h - pad); ctx.stroke();
    ctx.fillText(hi.toPrecision(3), 2, pad / 2 + 8); ctx.fillText(lo.toPrecision(3), 2, h - pad);
    ctx.fillText("epoch " + minEpoch, pad, h - pad + 16);
    ctx.fillText("epoch " + maxEpoch, w - pad - 40, h - pad + 16);
    SERIES.forEach(([key, color, label], i) => {
      const points = history.filter(p => Number.isFinite(p[key]));
      ctx.strokeStyle = ctx.fillStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      points.forEach((p, j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, x(p.epoch), y(p[key])));
      ctx.stroke();
      points.forEach(p => { ctx.beginPath(); ctx.arc(x(p.epoch), y(p[key]), 3, 0, 7); ctx.fill(); });
      ctx.fillText(label, w - 120, 16 + 14 * i);
    });
    ctx.lineWidth = 1;
  }

  function show(run) {
    const p = run.progress || {};
    statusEl.textContent = run.status;
    statusEl.className = "status-" + run.status;
    let text = `${p.phase ? p.phase + ": " : ""}epoch ${p.epoch ?? 0} of ${p.epochs ?? run.params.epochs ?? "?"}`;
    if (Number.isFinite(p.val_error_px)) text += ` · validation error ${p.val_error_px.toFixed(1)} px`;
    if (Number.isFinite(p.eta_s) && run.status === "running") text += ` · about ${Math.round(p.eta_s)} s left`;
    progressEl.textContent = text;
    draw(p.history || []);
  }

  async function poll() {
    try {
      const response = await fetch(url, {headers: {Accept: "application/json"}});
      if (response.ok) {
        const run = await response.json();
        show(run);
        if (!["queued", "running"].includes(run.status)) { location.reload(); return; }
      }
    } catch (e) { /* network hiccup: try again */ }
    setTimeout(poll, 1000);
  }

  draw(JSON.parse(script.dataset.history || "[]"));
  if (["queued", "running"].includes(script.dataset.status)) poll();
})();
