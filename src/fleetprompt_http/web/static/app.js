// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Copy buttons: data-copy="<id of the element whose text to copy>".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Forms whose submit button has data-once are sent once (a double click is one post;
  // the server makes it one install intent anyway, through the form's idempotency key).
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("[data-once]");
    if (!button) return;
    if (event.target.dataset.sent) { event.preventDefault(); return; }
    event.target.dataset.sent = "1";
    setTimeout(function () { button.disabled = true; }, 0);
  });

  // Countdowns: data-countdown-for="<id of a <time data-expires-ms>>".
  function tick() {
    document.querySelectorAll("[data-countdown-for]").forEach(function (node) {
      var time = document.getElementById(node.getAttribute("data-countdown-for"));
      if (!time) return;
      var left = Math.round((Number(time.getAttribute("data-expires-ms")) - Date.now()) / 1000);
      if (left <= 0) { node.textContent = "(expired)"; return; }
      var m = Math.floor(left / 60), s = left % 60;
      node.textContent = "(in " + m + " min " + (s < 10 ? "0" : "") + s + " s)";
    });
  }
  if (document.querySelector("[data-countdown-for]")) { tick(); setInterval(tick, 1000); }
})();
