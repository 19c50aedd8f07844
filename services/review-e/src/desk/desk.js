// The review desk's keys. Everything works without this script; it only moves
// focus: j/k through the queue (or to the next/previous proposal), a to the
// Approve button, r to the rejection's reason. Nothing is submitted by a key
// alone: Enter (or a click) still confirms.
"use strict";
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  var t = event.target;
  if (t && t.closest && t.closest("input, textarea, select, [contenteditable]")) return;
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-queue-item]"));
  if (rows.length && (event.key === "j" || event.key === "k")) {
    var at = rows.indexOf(document.activeElement);
    var next = event.key === "j" ? Math.min(at + 1, rows.length - 1) : Math.max(at - 1, 0);
    rows[next].focus();
    event.preventDefault();
    return;
  }
  var target = document.querySelector('[data-key="' + event.key + '"]');
  if (!target) return;
  event.preventDefault();
  if (target.tagName === "A") { target.click(); } else { target.focus(); }
});
