/* The managers' dashboard: draws the charts from the page's data element and refreshes the
   page's regions from the server every refresh_seconds while the tab is visible. No inline
   script: this file and Chart.js are served by the app itself (strict CSP). */
"use strict";

(function () {
  const CATEGORY_COLOURS = { medication: "#2b6cb0", observation: "#2f855a", treatment: "#c05621" };
  const PRIORITY_COLOURS = ["#a0aec0", "#63b3ed", "#3182ce", "#dd6b20", "#c53030"];
  const FACILITY_COLOUR = "#4a5568";
  const charts = {};
  let data = null;
  let lastRefresh = Date.now();
  let refreshing = null;

  function readData(doc) {
    return JSON.parse(doc.getElementById("dashboard-data").textContent);
  }

  function baseOptions(extra) {
    return Object.assign(
      {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
      },
      extra
    );
  }

  function configs(d) {
    const c = d.charts;
    const counts = { beginAtZero: true, ticks: { precision: 0 } };
    return {
      trend: {
        type: "bar",
        data: {
          labels: c.trend.labels,
          datasets: c.trend.series.map((series) => ({
            label: series.label,
            data: series.data,
            backgroundColor: CATEGORY_COLOURS[series.key],
            stack: "notes",
          })),
        },
        options: baseOptions({
          plugins: { legend: { display: true, position: "bottom" } },
          scales: { x: { stacked: true }, y: Object.assign({ stacked: true }, counts) },
        }),
      },
      priority: {
        type: "bar",
        data: {
          labels: c.priority.labels,
          datasets: [{ label: "Notes", data: c.priority.data, backgroundColor: PRIORITY_COLOURS }],
        },
        options: baseOptions({ scales: { y: counts } }),
      },
      facility: {
        type: "bar",
        data: {
          labels: c.facility.labels,
          datasets: [{ label: "Notes", data: c.facility.data, backgroundColor: FACILITY_COLOUR }],
        },
        options: baseOptions({ indexAxis: "y", scales: { x: counts } }),
      },
    };
  }

  function draw() {
    const first = Object.keys(charts).length === 0;
    for (const [name, config] of Object.entries(configs(data))) {
      if (charts[name]) {
        charts[name].data = config.data;
        charts[name].update();
      } else {
        charts[name] = new window.Chart(document.getElementById("chart-" + name), config);
      }
    }
    if (first) {
      // Navigation start to charts drawn: what the browser test reports as the load time.
      performance.mark("charts-drawn");
    }
    document.body.dataset.chartsDrawn = String(Number(document.body.dataset.chartsDrawn || 0) + 1);
  }

  function replaceRegions(doc) {
    document.querySelectorAll("[data-refresh-region]").forEach((region) => {
      const fresh = doc.getElementById(region.id);
      if (!fresh) return;
      const copy = document.importNode(fresh, true);
      if (region.tagName === "DETAILS") copy.open = region.open; // keep what the reader opened
      region.replaceWith(copy);
    });
    const element = document.getElementById("dashboard-data");
    element.textContent = doc.getElementById("dashboard-data").textContent;
  }

  async function refreshOnce() {
    const response = await fetch(window.location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.redirected || !response.ok) {
      // Signed out, or the page now refuses (membership revoked): show the real answer.
      window.location.reload();
      return;
    }
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    replaceRegions(doc);
    data = readData(document);
    draw();
    lastRefresh = Date.now();
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }

  /** Re-read the page from the server (the stats cache answers) and redraw; one at a time. */
  function refresh() {
    if (!refreshing) {
      refreshing = refreshOnce().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  function wirePeriod() {
    const period = document.getElementById("period");
    const dates = [document.getElementById("date_from"), document.getElementById("date_to")];
    period.addEventListener("change", () => {
      const custom = period.value === "custom";
      dates.forEach((input) => {
        input.disabled = !custom;
      });
    });
  }

  function start() {
    data = readData(document);
    draw();
    wirePeriod();
    const every = data.refresh_seconds * 1000;
    window.setInterval(() => {
      if (document.visibilityState === "visible") refresh();
    }, every);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && Date.now() - lastRefresh >= every) refresh();
    });
    window.carenotesDashboard = { refresh, charts };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
