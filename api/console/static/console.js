// consent-ledger console: progressive enhancement only (every page works without it).
// The timeline: hovering over or focusing a bar or a tenant-wide marker shows its entry in the
// live region below the drawing (the SVG's <title> already gives a tooltip without script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const detail = document.getElementById("timeline-detail");
  if (!detail) return;
  const initial = detail.textContent;
  for (const item of document.querySelectorAll(".timeline-svg [data-detail]")) {
    const show = () => { detail.textContent = item.getAttribute("data-detail"); };
    item.addEventListener("mouseenter", show);
    item.addEventListener("focus", show);
    item.addEventListener("mouseleave", () => { detail.textContent = initial; });
  }
});
