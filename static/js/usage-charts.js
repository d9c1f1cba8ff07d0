// Usage graphs, drawn with the vendored uPlot (static/vendor/uplot/) on <canvas>.
// - [data-usage-src]: the usage page; fetches its JSON once and draws each [data-chart] inside it.
// - [data-metrics-src]: a server's CPU utilisation on its detail page, with a 24 h / 7 d switch.
// Without this file the tables under each usage graph carry the same figures. Styles are set
// through element.style and classes only (CSSOM), which the Content-Security-Policy allows.
(function () {
  "use strict";
  if (window.portalUsageCharts) return;

  var DAY = 86400;
  var HEIGHT = 240;
  var INK = "#5b6478";
  var GRID = "#eef1f6";
  var METER_COLOURS = { compute: "#2f5bea", license: "#8b5cf6", disk: "#0d9488", volume: "#d98b00" };
  var SINGLE = {
    vcpu_hours: { label: "vCPU-hours", colour: "#2f5bea" },
    ram_gib_hours: { label: "RAM GiB-hours", colour: "#8b5cf6" },
    storage_gib_hours: { label: "Storage GiB-hours", colour: "#0d9488" },
  };

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  function dayTs(iso) {
    return Date.parse(iso + "T00:00:00Z") / 1e3;
  }

  function number(value, digits) {
    return Number(value).toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function axis(format) {
    return {
      stroke: INK,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
      size: 64,
      values: format ? function (u, splits) { return splits.map(format); } : undefined,
    };
  }

  // Ticks at 1, 2 or 5 times a power of ten (uPlot's own steps include 2.5, whose ticks read
  // 0.3, 0.5, 0.8 once rounded), labelled with as many decimals as the step needs.
  var NICE_STEPS = [];
  for (var exponent = -3; exponent <= 8; exponent++) {
    [1, 2, 5].forEach(function (m) { NICE_STEPS.push(Number((m * Math.pow(10, exponent)).toPrecision(1))); });
  }

  function decimalsFor(step) {
    return step >= 1 ? 0 : Math.round(-Math.log10(step) + 0.49);
  }

  // An axis of quantities (vCPU-hours, GiB-hours) or, with `minimum` 0.01 and a currency, of money.
  // The labels drawn are also left in data-axis-ticks, for people's tools and the tests to read.
  function valueAxis(el, minimum, fixedDecimals) {
    var spec = axis();
    spec.incrs = NICE_STEPS.filter(function (step) { return step >= minimum; });
    spec.values = function (u, splits, axisIdx, space, step) {
      var labels = splits.map(function (v) { return number(v, fixedDecimals != null ? fixedDecimals : decimalsFor(step)); });
      el.dataset.axisTicks = labels.join(" | ");
      return labels;
    };
    return spec;
  }

  // Day-first labels in UTC ("27 Oct", a year under the first tick of a new year).
  // Columns: tick increment, label, then what a new year / month / day / hour / minute / second adds.
  var TIME_STAMPS = [
    [DAY * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [DAY * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [DAY, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
  ];

  function timeAxis() {
    return { stroke: INK, grid: { show: false }, ticks: { stroke: GRID, width: 1 }, values: TIME_STAMPS };
  }

  function dayLabel(u, ts) {
    return ts == null ? "—" : uPlot.fmtDate("{D} {MMM} {YYYY}")(utc(ts));
  }

  function width(el) {
    return Math.max(240, Math.floor(el.getBoundingClientRect().width));
  }

  // Keeps a chart as wide as its box, and forgets it once htmx has swapped the box away.
  function fit(el, plot) {
    if (!window.ResizeObserver) return;
    var observer = new ResizeObserver(function () {
      if (!el.isConnected) {
        observer.disconnect();
        plot.destroy();
        return;
      }
      plot.setSize({ width: width(el), height: HEIGHT });
    });
    observer.observe(el);
  }

  function show(el) {
    el.hidden = false;
    el.classList.add("chart-drawn");
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function dayScale() {
    // Half a day either side so the first and last bars are not cut in half.
    return {
      time: true,
      range: function (u, min, max) {
        return [min - DAY / 2, max + DAY / 2];
      },
    };
  }

  function bars() {
    return uPlot.paths.bars({ size: [0.72, 36], gap: 1 });
  }

  // uPlot does not stack: each meter is drawn at the running total of the meters below it, the
  // tallest first so the lower ones paint over it; legend and tooltip show each meter's own cost.
  function drawCost(el, data) {
    var xs = data.days.map(dayTs);
    var running = xs.map(function () { return 0; });
    var layers = data.meters.map(function (meter) {
      var own = data.cost_by_meter[meter.key].map(Number);
      running = running.map(function (v, i) { return v + own[i]; });
      return { meter: meter, own: own, top: running.slice() };
    }).reverse();
    var series = [{ label: "Day", value: dayLabel }];
    layers.forEach(function (layer) {
      var colour = METER_COLOURS[layer.meter.key] || INK;
      series.push({
        label: layer.meter.label,
        stroke: colour,
        fill: colour,
        width: 0,
        paths: bars(),
        points: { show: false },
        value: function (u, v, si, idx) {
          return idx == null ? "—" : number(layer.own[idx], 2) + " " + data.currency;
        },
      });
    });
    if (layers.length === 0) {
      series.push({ label: "Cost", stroke: INK, paths: bars(), points: { show: false } });
      layers.push({ top: xs.map(function () { return 0; }) });
    }
    var opts = {
      width: width(el),
      height: HEIGHT,
      tzDate: utc,
      // A cent at least, so that the first cents of a new project are a bar, not a hairline.
      scales: { x: dayScale(), y: { range: function (u, min, max) { return [0, Math.max(max, 0.01)]; } } },
      axes: [timeAxis(), valueAxis(el, 0.01, 2)],
      series: series,
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      legend: { live: true },
    };
    show(el);
    var plot = new uPlot(opts, [xs].concat(layers.map(function (l) { return l.top; })), el);
    el.classList.add("chart-stacked");
    fit(el, plot);
  }

  function drawSingle(el, data, key) {
    var spec = SINGLE[key];
    var xs = data.days.map(dayTs);
    var opts = {
      width: width(el),
      height: HEIGHT,
      tzDate: utc,
      scales: { x: dayScale(), y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [timeAxis(), valueAxis(el, 0.01)],
      series: [
        { label: "Day", value: dayLabel },
        {
          label: spec.label,
          stroke: spec.colour,
          fill: spec.colour + "cc",
          width: 0,
          paths: bars(),
          points: { show: false },
          value: function (u, v) { return v == null ? "—" : number(v, 1); },
        },
      ],
      cursor: { points: { show: false }, drag: { x: false, y: false } },
    };
    show(el);
    fit(el, new uPlot(opts, [xs, data[key].map(Number)], el));
  }

  function problem(root, text) {
    var note = document.createElement("p");
    note.className = "alert alert-warning chart-problem";
    note.setAttribute("role", "status");
    note.textContent = text;
    root.insertBefore(note, root.firstChild);
  }

  // The JSON body, or an Error whose message can be shown as it is.
  function fetchJson(url) {
    var failed = "The figures could not be loaded";
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(
      function (r) {
        return r.json().then(
          function (body) {
            if (!r.ok) throw new Error(body.error || failed + " (error " + r.status + ").");
            return body;
          },
          function () {
            // Not JSON: an error page, or the sign-in page after the session ended.
            throw new Error(failed + (r.ok ? ": reload the page, you may need to sign in again." : " (error " + r.status + ")."));
          }
        );
      },
      function () {
        throw new Error(failed + ": the portal did not answer.");
      }
    );
  }

  function setUpUsage(root) {
    if (root.dataset.ready) return;
    root.dataset.ready = "1";
    fetchJson(root.dataset.usageSrc)
      .then(function (data) {
        root.querySelectorAll("[data-chart]").forEach(function (el) {
          var key = el.dataset.chart;
          if (key === "cost") drawCost(el, data);
          else if (SINGLE[key]) drawSingle(el, data, key);
        });
        root.dataset.drawn = "1";
      })
      .catch(function (error) {
        problem(root, error.message + " The tables below each graph still have the figures.");
      });
  }

  // --- CPU utilisation of one server ---------------------------------------------------------

  function setUpCpu(panel) {
    if (panel.dataset.ready) return;
    panel.dataset.ready = "1";
    var el = panel.querySelector("[data-chart=cpu]");
    var status = panel.querySelector("[data-chart-status]");
    var ranges = panel.querySelector("[data-chart-ranges]");
    var plot = null;

    function load(range) {
      status.textContent = "Loading CPU samples…";
      fetchJson(panel.dataset.metricsSrc + "?range=" + encodeURIComponent(range))
        .then(function (data) {
          if (plot) {
            plot.destroy();
            plot = null;
          }
          var start = Date.parse(data.start) / 1e3;
          var end = Date.parse(data.end) / 1e3;
          if (!data.samples.length) {
            el.hidden = true;
            status.textContent = data.message || "No CPU samples in this window.";
            panel.dataset.drawn = "1";
            return;
          }
          var xs = data.samples.map(function (s) { return s[0]; });
          var ys = data.samples.map(function (s) { return s[1]; });
          var sum = ys.reduce(function (a, b) { return a + b; }, 0);
          var opts = {
            width: width(el),
            height: HEIGHT,
            tzDate: utc,
            scales: { x: { time: true, range: function () { return [start, end]; } }, y: { range: [0, 100] } },
            axes: [timeAxis(), axis(function (v) { return v + " %"; })],
            series: [
              {
                label: "Time",
                value: function (u, ts) { return ts == null ? "—" : uPlot.fmtDate("{D} {MMM} {HH}:{mm} UTC")(utc(ts)); },
              },
              {
                label: "CPU",
                stroke: "#2f5bea",
                fill: "rgba(47, 91, 234, .14)",
                width: 1.5,
                // One or two samples make no line to see (a server minutes old): draw them as dots.
                points: { show: ys.length < 3, size: 9, width: 2, stroke: "#2f5bea", fill: "#2f5bea" },
                value: function (u, v) { return v == null ? "—" : number(v, 1) + " %"; },
              },
            ],
            cursor: { drag: { x: false, y: false } },
          };
          show(el);
          plot = new uPlot(opts, [xs, ys], el);
          fit(el, plot);
          if (ys.length === 1) {
            status.textContent =
              "Only one sample so far: " + number(ys[0], 1) + " % of the server's vCPUs at " +
              uPlot.fmtDate("{HH}:{mm}")(utc(xs[0])) + " UTC. Not enough data for a line yet; it grows as samples arrive.";
          } else {
            status.textContent =
              "Over the last " + data.label + ": average " + number(sum / ys.length, 1) + " %, peak " +
              number(Math.max.apply(null, ys), 1) + " % of the server's vCPUs (" + ys.length + " samples, UTC).";
          }
          panel.dataset.drawn = "1";
        })
        .catch(function (error) {
          el.hidden = true;
          status.textContent = error.message;
          panel.dataset.drawn = "1";
        });
    }

    if (ranges) {
      ranges.hidden = false;
      ranges.querySelectorAll("[data-range]").forEach(function (button) {
        button.addEventListener("click", function () {
          ranges.querySelectorAll("[data-range]").forEach(function (b) {
            b.setAttribute("aria-pressed", b === button ? "true" : "false");
          });
          load(button.dataset.range);
        });
      });
    }
    load("24h");
  }

  function setUp(scope) {
    if (typeof uPlot === "undefined") return;
    scope.querySelectorAll("[data-usage-src]").forEach(setUpUsage);
    scope.querySelectorAll("[data-metrics-src]").forEach(setUpCpu);
  }

  window.portalUsageCharts = { setUp: setUp };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  } else {
    setUp(document);
  }
  // The server page re-renders its live region while an action runs: draw the new copy too.
  document.addEventListener("htmx:load", function (event) { setUp(event.detail.elt); });
})();
