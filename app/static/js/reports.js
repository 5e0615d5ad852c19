/* Supervisors' pages: charts drawn with the locally served Apache ECharts from the JSON the page carries
   in a data attribute (no inline scripts: the pages run under a strict Content-Security-Policy). Clicking a bar, a point or
   a slice opens the list of cases behind it. */
(function () {
  "use strict";

  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }

  function go(links, index) {
    var link = links && links[index];
    if (link) { window.location.href = link; }
  }

  var builders = {
    trend: function (d) {
      var series = [{ name: d.bars.name, type: "bar", yAxisIndex: 1, data: d.bars.values, itemStyle: { color: "#d9d9d9" } }];
      d.lines.forEach(function (line) {
        series.push({ name: line.name, type: "line", data: line.values, connectNulls: false, symbolSize: 7 });
      });
      return {
        option: {
          color: ["#b3261e", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"],
          tooltip: { trigger: "axis", valueFormatter: function (v) { return v > 1 ? v : percent(v); } },
          legend: { top: 0, type: "scroll" },
          grid: { left: 48, right: 48, top: 40, bottom: 32 },
          xAxis: { type: "category", data: d.labels },
          yAxis: [
            { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
            { type: "value", minInterval: 1, splitLine: { show: false } }
          ],
          series: series
        },
        click: function (p) {
          if (p.seriesIndex === 0) { go(d.bars.links, p.dataIndex); } else { go(d.lines[p.seriesIndex - 1].links, p.dataIndex); }
        }
      };
    },
    rank_community: rankChart,
    rank_firm: rankChart,
    steps: function (d) {
      return {
        option: {
          color: ["#1f77b4"],
          tooltip: { trigger: "axis", valueFormatter: percent },
          grid: { left: 110, right: 24, top: 16, bottom: 24 },
          xAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
          yAxis: { type: "category", data: d.labels, inverse: true },
          series: [{ name: d.name, type: "bar", data: d.values, label: { show: true, position: "right", formatter: function (p) { return percent(p.value); } } }]
        },
        click: function (p) { go(d.links, p.dataIndex); }
      };
    },
    category: function (d) {
      return {
        option: {
          tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
          legend: { type: "scroll", bottom: 0 },
          series: [{ type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"], data: d.items.map(function (i) { return { name: i.name, value: i.value }; }) }]
        },
        click: function (p) { var item = d.items[p.dataIndex]; if (item && item.link) { window.location.href = item.link; } }
      };
    },
    history: function (d) {
      return {
        option: {
          color: ["#b3261e"],
          tooltip: { trigger: "axis" },
          grid: { left: 40, right: 16, top: 16, bottom: 24 },
          xAxis: { type: "category", data: d.labels },
          yAxis: { type: "value", min: 0, max: 100 },
          series: [{ name: d.name, type: "line", data: d.values, symbolSize: 8,
                     markLine: { silent: true, symbol: "none", data: [{ yAxis: 90 }, { yAxis: 75 }, { yAxis: 60 }] } }]
        }
      };
    }
  };

  function rankChart(d) {
    return {
      option: {
        color: ["#b3261e"],
        tooltip: { trigger: "axis", valueFormatter: percent },
        grid: { left: 120, right: 48, top: 16, bottom: 24 },
        xAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
        yAxis: { type: "category", data: d.labels, inverse: true },
        series: [{ name: d.name, type: "bar", data: d.values, label: { show: true, position: "right", formatter: function (p) { return percent(p.value); } } }]
      },
      click: function (p) { go(d.links, p.dataIndex); }
    };
  }

  function drawCharts() {
    var source = document.getElementById("chart-data");
    if (!source || typeof window.echarts === "undefined") { return; }
    var data = JSON.parse(source.getAttribute("data-json"));
    var charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var name = el.getAttribute("data-chart");
      if (!data[name] || !builders[name]) { return; }
      var built = builders[name](data[name]);
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(built.option);
      if (built.click) { chart.on("click", built.click); }
      el.setAttribute("data-drawn", "1");
      charts.push(chart);
    });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }

  function guardBulkUrge() {
    var form = document.getElementById("bulk-urge");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      var ticked = document.querySelectorAll('input[name="refs"][form="bulk-urge"]:checked').length;
      if (!ticked) {
        event.preventDefault();
        window.alert(form.getAttribute("data-confirm-none"));
      }
    });
  }

  function printButtons() {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });
  }

  function start() { drawCharts(); guardBulkUrge(); printButtons(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
