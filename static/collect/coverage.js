// Draws a coverage grid ({cols, rows, counts}) on a canvas: brighter = more accepted samples.

export function drawCoverage(canvas, { cols, rows, counts }, aspect = 16 / 9) {
  canvas.height = Math.round(canvas.width / aspect);
  const context = canvas.getContext("2d");
  const cellW = canvas.width / cols;
  const cellH = canvas.height / rows;
  const most = Math.max(1, ...counts.flat());
  context.fillStyle = "#10151c";
  context.fillRect(0, 0, canvas.width, canvas.height);
  counts.forEach((row, r) => row.forEach((count, c) => {
    if (!count) return;
    const strength = Math.sqrt(count / most);
    context.fillStyle = `rgba(94, 196, 182, ${0.25 + 0.75 * strength})`;
    context.fillRect(c * cellW + 1, r * cellH + 1, cellW - 2, cellH - 2);
  }));
  context.strokeStyle = "rgba(255, 255, 255, 0.08)";
  for (let c = 1; c < cols; c += 1) line(context, c * cellW, 0, c * cellW, canvas.height);
  for (let r = 1; r < rows; r += 1) line(context, 0, r * cellH, canvas.width, r * cellH);
}

function line(context, x0, y0, x1, y1) {
  context.beginPath();
  context.moveTo(x0, y0);
  context.lineTo(x1, y1);
  context.stroke();
}
