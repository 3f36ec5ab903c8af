/*
 * The staff dashboard's charts. Data comes from the json_script element
 * #dashboard-data (rendered by analytics.admin_views); Chart.js is vendored in
 * analytics/vendor/. No inline script, so the page works under a strict CSP.
 * The charts are exposed as window.opsCharts for the browser test.
 */
(function () {
  "use strict";

  var COLORS = {
    subscriptions: "#417690",
    purchases: "#f5a623",
    purchased: "#2e7d32",
    consumed: "#c62828",
    statuses: {
      trialing: "#79aec8",
      active: "#2e7d32",
      past_due: "#f5a623",
      canceled: "#9e9e9e",
    },
  };

  function readData() {
    var element = document.getElementById("dashboard-data");
    return JSON.parse(element.textContent);
  }

  function money(currency) {
    var format = new Intl.NumberFormat(undefined, { style: "currency", currency: currency });
    return function (value) {
      return format.format(value);
    };
  }

  function credits(value) {
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 }).format(value);
  }

  function revenueChart(canvas, series) {
    var asMoney = money(series.currency);
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          { label: "Subscriptions", data: series.subscriptions, backgroundColor: COLORS.subscriptions },
          { label: "Credit purchases", data: series.purchases, backgroundColor: COLORS.purchases },
        ],
      },
      options: {
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { callback: asMoney } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + asMoney(item.parsed.y);
              },
            },
          },
        },
      },
    });
  }

  function creditsChart(canvas, series) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: series.labels,
        datasets: [
          {
            label: "Purchased",
            data: series.purchased,
            borderColor: COLORS.purchased,
            backgroundColor: COLORS.purchased,
            tension: 0,
          },
          {
            label: "Consumed",
            data: series.consumed,
            borderColor: COLORS.consumed,
            backgroundColor: COLORS.consumed,
            tension: 0,
          },
        ],
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { callback: credits } } },
      },
    });
  }

  function subscriptionsChart(canvas, series) {
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          {
            label: "Subscriptions",
            data: series.counts,
            backgroundColor: series.statuses.map(function (status) {
              return COLORS.statuses[status] || COLORS.subscriptions;
            }),
          },
        ],
      },
      options: {
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  function start() {
    var data = readData();
    // A dashboard is read, not watched: draw at once (also keeps screenshots deterministic).
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.responsive = true;
    // Follow the admin's light or dark theme.
    var style = getComputedStyle(document.body);
    Chart.defaults.color = style.getPropertyValue("--body-quiet-color").trim() || Chart.defaults.color;
    Chart.defaults.borderColor = style.getPropertyValue("--hairline-color").trim() || Chart.defaults.borderColor;
    window.opsCharts = {
      revenue: revenueChart(document.getElementById("revenue-chart"), data.revenue),
      credits: creditsChart(document.getElementById("credits-chart"), data.credits),
      subscriptions: subscriptionsChart(document.getElementById("subscriptions-chart"), data.subscriptions),
    };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
