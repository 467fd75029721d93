// Campaign pages: show only the form sections of the chosen kind; draw the results chart per arm.
(function () {
  "use strict";

  function syncKind(form) {
    var checked = form.querySelector('input[name="kind"]:checked');
    var kind = checked ? checked.value : "broadcast";
    form.querySelectorAll("[data-for-kind]").forEach(function (section) {
      var kinds = (section.getAttribute("data-for-kind") || "").split(" ");
      section.hidden = kinds.indexOf(kind) < 0;
      // a hidden section is not sent either: its inputs' min/max must not block a save it has no part in
      section.disabled = section.hidden;
    });
  }

  function setupForm(form) {
    form.querySelectorAll('input[name="kind"]').forEach(function (input) {
      input.addEventListener("change", function () { syncKind(form); });
    });
    syncKind(form);
  }

  // The chart's canvas has no id on purpose: htmx copies the attributes of same-id elements across a
  // swap, and Chart.js's inline size style would then break the page's CSP.
  var current = null;

  function drawArms(root) {
    var canvas = root.querySelector("canvas[data-arms-chart]");
    if (!canvas || !window.Chart || canvas.getAttribute("data-chart-state") === "ready") {
      return;
    }
    var arms = JSON.parse(canvas.getAttribute("data-arms-chart") || "[]");
    if (current) {
      current.destroy();
    }
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    current = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: arms.map(function (a) { return a.label; }),
        datasets: [{
          label: "Conversion rate (%)",
          data: arms.map(function (a) { return a.rate; }),
          backgroundColor: arms.map(function (a) { return a.label === "Control group" ? "#94a3b8" : "#0f5c63"; })
        }]
      },
      options: {
        animation: reduced ? false : { duration: 300 },
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "% converted" } } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var a = arms[ctx.dataIndex];
                return a.rate.toFixed(1) + "% (95% CI " + a.low.toFixed(1) + "–" + a.high.toFixed(1) + "%)";
              }
            }
          }
        }
      }
    });
    canvas.setAttribute("data-chart-state", "ready");
    canvas.setAttribute("data-chart-points", String(arms.length));
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-campaign-form]").forEach(setupForm);
    drawArms(document);
  });
  document.addEventListener("htmx:afterSettle", function () {
    drawArms(document);
  });
})();
