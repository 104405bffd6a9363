// Draws a report's chart with Chart.js (served from node_modules) from the JSON the page
// carries in <script type="application/json">: no inline code, so the CSP can stay strict.
(function () {
  "use strict";

  var COLOURS = ["#0f766e", "#2563eb", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#64748b"];

  function fill(template, n) {
    return template.replace("%(n)s", String(n));
  }

  // 2 min 5 s, 1 h 3 min, 2 d 4 h: the page's own way of writing a duration.
  function duration(seconds, words) {
    if (seconds === null || seconds === undefined) return "—";
    var total = Math.round(seconds);
    var d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60), s = total % 60;
    if (d) return fill(words.d, d) + (h ? " " + fill(words.h, h) : "");
    if (h) return fill(words.h, h) + (m ? " " + fill(words.min, m) : "");
    if (m) return fill(words.min, m) + (s ? " " + fill(words.s, s) : "");
    return fill(words.s, s);
  }

  function formatter(data) {
    var numbers = new Intl.NumberFormat(data.lang, { maximumFractionDigits: 2 });
    if (data.unit === "seconds") return function (v) { return duration(v, data.words); };
    if (data.unit === "hours") return function (v) { return duration(v * 3600, data.words); };
    if (data.unit === "money") {
      var money = new Intl.NumberFormat(data.lang, { style: "currency", currency: data.currency, maximumFractionDigits: 4 });
      return function (v) { return money.format(v); };
    }
    return function (v) { return numbers.format(v); };
  }

  function config(data) {
    var format = formatter(data);
    var stacked = data.kind === "stacked";
    var line = data.kind === "line";
    var datasets = data.series.map(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      return {
        label: s.label,
        data: s.data,
        borderColor: colour,
        backgroundColor: line ? colour + "22" : colour,
        borderWidth: line ? 2 : 0,
        pointRadius: data.labels.length > 45 ? 0 : 2,
        tension: 0.3,
        cubicInterpolationMode: "monotone",
        spanGaps: true,
        maxBarThickness: 48
      };
    });
    return {
      type: line ? "line" : "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return " " + ctx.dataset.label + ": " + format(ctx.parsed.y);
              }
            }
          }
        },
        scales: {
          x: { stacked: stacked, grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0 } },
          y: { stacked: stacked, beginAtZero: true, ticks: { callback: function (v) { return format(v); } } }
        }
      }
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    new window.Chart(canvas, config(data));
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  });
})();
