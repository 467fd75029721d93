// Rapport marketer UI behaviour. No inline scripts anywhere, so the pages run under a strict CSP.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // htmx: every request carries the session's CSRF token from the page's meta tag.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRF-Token"] = token;
    }
  });

  // Charts: <canvas data-chart="line" data-chart-src="/ui/api/…"> fed by a form[data-chart-range=<canvas id>].
  var palette = ["#0f5c63", "#c2410c", "#1d4ed8", "#7c3aed", "#15803d"];

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function shiftDays(day, delta) {
    var date = new Date(day + "T00:00:00Z");
    date.setUTCDate(date.getUTCDate() + delta);
    return isoDay(date);
  }

  function formatNumber(value) {
    return new Intl.NumberFormat("en-GB").format(value);
  }

  function setupChart(canvas) {
    var form = document.querySelector('form[data-chart-range="' + canvas.id + '"]');
    var summary = document.getElementById(canvas.getAttribute("data-chart-summary") || "");
    var chart = null;
    var sequence = 0;

    function say(text) {
      if (summary) {
        summary.textContent = text;
      }
    }

    function query() {
      var params = new URLSearchParams();
      if (form) {
        new FormData(form).forEach(function (value, key) {
          params.append(key, String(value));
        });
      }
      return params;
    }

    function draw(payload) {
      var labels = payload.points.map(function (p) { return p.date; });
      var values = payload.points.map(function (p) { return p.value; });
      var dataset = {
        label: payload.label,
        data: values,
        borderColor: palette[0],
        backgroundColor: "rgba(15, 92, 99, 0.12)",
        fill: true,
        cubicInterpolationMode: "monotone",
        pointRadius: values.length > 60 ? 0 : 3,
        borderWidth: 2
      };
      if (chart) {
        chart.data.labels = labels;
        chart.data.datasets = [dataset];
        chart.update();
      } else {
        chart = new window.Chart(canvas, {
          type: canvas.getAttribute("data-chart") || "line",
          data: { labels: labels, datasets: [dataset] },
          options: {
            animation: reducedMotion() ? false : { duration: 400 },
            responsive: true,
            maintainAspectRatio: false,
            interaction: { mode: "index", intersect: false },
            scales: {
              y: { beginAtZero: true, ticks: { precision: 0 } },
              x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } }
            },
            plugins: { legend: { display: false } }
          }
        });
      }
      canvas.setAttribute("aria-label", payload.label + " from " + payload.from + " to " + payload.to);
      canvas.setAttribute("data-chart-state", "ready");
      canvas.setAttribute("data-chart-points", String(values.length));
      say(payload.label + ": " + formatNumber(payload.total) + " " + payload.unit + " from " +
        payload.from + " to " + payload.to + ".");
    }

    function load() {
      var mine = ++sequence;
      var params = query();
      canvas.setAttribute("data-chart-state", "loading");
      say("Loading the chart…");
      fetch(canvas.getAttribute("data-chart-src") + "?" + params.toString(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          return response.json().then(function (body) {
            return { ok: response.ok, body: body };
          });
        })
        .then(function (result) {
          if (mine !== sequence) {
            return;
          }
          if (!result.ok) {
            canvas.setAttribute("data-chart-state", "error");
            say((result.body.error && result.body.error.message) || "The chart could not be loaded.");
            return;
          }
          draw(result.body);
          if (window.history && window.history.replaceState) {
            // the fragment stays: a keyboard user may have skipped to the content (#main) before the chart loaded
            window.history.replaceState(
              null, "", window.location.pathname + "?" + params.toString() + window.location.hash
            );
          }
        })
        .catch(function () {
          canvas.setAttribute("data-chart-state", "error");
          say("The chart could not be loaded. Check the connection and try again.");
        });
    }

    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        load();
      });
      form.addEventListener("change", function (event) {
        if (event.target && event.target.name === "metric") {
          load();
        }
      });
      form.querySelectorAll("[data-range-days]").forEach(function (button) {
        button.addEventListener("click", function () {
          var days = parseInt(button.getAttribute("data-range-days"), 10);
          var to = form.elements.namedItem("to");
          var from = form.elements.namedItem("from");
          var last = to.getAttribute("max") || isoDay(new Date());
          to.value = last;
          from.value = shiftDays(last, 1 - days);
          load();
        });
      });
    }
    load();
  }

  // Copy buttons: <button data-copy="element-id">.
  function setupCopy(button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) {
        button.textContent = "Select and copy";
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Select and copy"; }
      );
    });
  }

  // Disclosure menus close on Escape and on a click elsewhere.
  function setupDisclosures() {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") {
        return;
      }
      document.querySelectorAll("details[open]").forEach(function (details) {
        details.removeAttribute("open");
        var summary = details.querySelector("summary");
        if (summary && details.contains(document.activeElement)) {
          summary.focus();
        }
      });
    });
    document.addEventListener("click", function (event) {
      document.querySelectorAll("details.usermenu[open]").forEach(function (details) {
        if (!details.contains(event.target)) {
          details.removeAttribute("open");
        }
      });
    });
  }

  function start() {
    if (window.Chart) {
      document.querySelectorAll("canvas[data-chart]").forEach(setupChart);
    }
    document.querySelectorAll("[data-copy]").forEach(setupCopy);
    setupDisclosures();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
