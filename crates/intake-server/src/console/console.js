// Intake's web console: the live progress of running uploads, the one part of the console
// that needs JavaScript. While a region of the page (data-live-region) shows a running
// request (data-live), the page is fetched again every two seconds and each region is
// replaced by its new version. Without JavaScript the page works the same, by reloading.
(function () {
  "use strict";
  var DELAY = 2000;
  function live() { return document.querySelector("[data-live-region] [data-live], [data-live-region][data-live]"); }
  function tick() {
    if (!live()) { return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          document.querySelectorAll("[data-live-region]").forEach(function (region) {
            var fresh = region.id && doc.getElementById(region.id);
            if (fresh) { region.replaceWith(document.importNode(fresh, true)); }
          });
        }
        window.setTimeout(tick, DELAY);
      })
      .catch(function () { window.setTimeout(tick, DELAY * 3); });
  }
  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(tick, DELAY); });
})();
