// Behaviour every admin page shares, kept out of the HTML (the Content-Security-Policy
// allows no inline script or style): confirmations before destructive forms, and sizes and
// positions given as data attributes (bars of the per-day chart, target dots on crops).
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
for (const element of document.querySelectorAll("[data-width-px]")) {
  element.style.width = `${element.dataset.widthPx}px`;
}
for (const element of document.querySelectorAll("[data-left-pct]")) {
  element.style.left = `${element.dataset.leftPct}%`;
  element.style.top = `${element.dataset.topPct}%`;
}
