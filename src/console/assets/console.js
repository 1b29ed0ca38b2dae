// inboxguard console: small enhancements over pages that work without script.
// - the domains table filters as you type into its search box;
// - times are shown in the reader's local time zone, with "ago".
"use strict";

(function () {
  function ago(seconds) {
    if (seconds < 120) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }

  function localTimes() {
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      el.title = el.getAttribute("datetime");
      el.textContent = new Date(t).toLocaleString() + " (" + ago((now - t) / 1000) + ")";
    });
  }

  function filterTable(input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var count = document.getElementById(input.getAttribute("data-filter") + "-count");
    if (!table) return;
    var apply = function () {
      var needle = input.value.trim().toLowerCase();
      var shown = 0;
      table.querySelectorAll("tbody tr[data-domain]").forEach(function (row) {
        var match = row.getAttribute("data-domain").indexOf(needle) !== -1;
        row.hidden = !match;
        if (match) shown += 1;
      });
      if (count) count.textContent = shown + " domains match";
    };
    input.addEventListener("input", apply);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    document.querySelectorAll("input[data-filter]").forEach(filterTable);
  });
})();
