// Live countdown of each case's deadline in a list, in working time when the step counts working time.
// The server renders the time left at page load (data-left, minutes) and the business periods of the
// coming days (data-windows on the list, epoch ms); the countdown subtracts the business time that has
// passed since. Calendar-time steps count down in plain time. Rows turn amber at the warning instant and
// red when overdue.
(function () {
  "use strict";
  var list = document.getElementById("queue");
  if (!list) { return; }
  var windows = [];
  try { windows = JSON.parse(list.getAttribute("data-windows") || "[]"); } catch (e) { windows = []; }
  var loaded = Date.now();
  var fmtLeft = list.getAttribute("data-fmt-left") || "{t} left";
  var fmtOver = list.getAttribute("data-fmt-over") || "overdue by {t}";
  // past the deadline by less than a minute of the step's time (e.g. due at 17:30, evening now: no working
  // time has passed since) — "overdue", not "overdue by 0 min"
  var justOver = list.getAttribute("data-overdue") || "overdue";
  var unitD = list.getAttribute("data-unit-d") || "d";
  var unitH = list.getAttribute("data-unit-h") || "h";
  var unitM = list.getAttribute("data-unit-m") || "min";
  var workingLabel = list.getAttribute("data-working") || "";

  function businessMinutes(from, to) {
    var total = 0;
    for (var i = 0; i < windows.length; i++) {
      var start = Math.max(from, windows[i][0]);
      var end = Math.min(to, windows[i][1]);
      if (end > start) { total += end - start; }
    }
    return total / 60000;
  }

  function human(minutes, working) {
    var m = Math.floor(Math.abs(minutes));
    var parts = [];
    if (!working && m >= 1440) { parts.push(Math.floor(m / 1440) + " " + unitD); m = m % 1440; }
    if (m >= 60) { parts.push(Math.floor(m / 60) + " " + unitH); m = m % 60; }
    if (parts.length < 2) { parts.push(m + " " + unitM); }
    return parts.join(" ");
  }

  function tick() {
    var now = Date.now();
    var items = list.querySelectorAll(".countdown");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var due = parseInt(el.getAttribute("data-due"), 10);
      var warn = parseInt(el.getAttribute("data-warn"), 10);
      var working = el.getAttribute("data-working") === "1";
      var leftAttr = el.getAttribute("data-left");
      var left;
      if (working && leftAttr !== "") {
        left = parseFloat(leftAttr) - businessMinutes(loaded, now);
        if (now >= due && left > 0) { left = 0; }
      } else {
        left = (due - now) / 60000;
      }
      var text;
      if (left > 0) {
        text = fmtLeft.replace("{t}", human(left, working));
      } else if (left > -1) {
        text = justOver;
      } else {
        text = fmtOver.replace("{t}", human(left, working));
      }
      if (working && workingLabel && text !== justOver) { text += " (" + workingLabel + ")"; }
      el.textContent = text;
      var row = el.closest(".queue-row");
      if (!row) { continue; }
      var level = parseInt(row.getAttribute("data-level"), 10) || 0;
      if (now >= due && level < 2) { level = 2; }
      else if (!isNaN(warn) && now >= warn && level < 1) { level = 1; }
      row.setAttribute("data-level", String(level));
      row.classList.toggle("queue-warning", level === 1);
      row.classList.toggle("queue-overdue", level >= 2);
      el.classList.toggle("text-danger", level >= 2);
    }
  }

  tick();
  window.setInterval(tick, 30000);
})();
