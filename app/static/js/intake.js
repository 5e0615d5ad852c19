// The intake page: caller history from the phone number, a category picker searchable by Chinese,
// pinyin or initials, buildings of the chosen compound, and the duplicate hint while typing.
(function () {
  "use strict";
  var form = document.getElementById("intake-form");
  if (!form) { return; }
  var phone = document.getElementById("resident_phone");
  var nameInput = document.getElementById("resident_name");
  var compound = document.getElementById("compound");
  var building = document.getElementById("building");
  var category = document.getElementById("category");
  var search = document.getElementById("category-search");
  var info = document.getElementById("category-info");
  var unit = document.getElementById("unit");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function caseItem(c) {
    var li = el("li", "py-1 border-top");
    var a = el("a", "fw-semibold me-2", c.ref);
    a.href = c.url; a.target = "_blank";
    li.appendChild(a);
    li.appendChild(el("span", "badge text-bg-" + (c.open ? "warning" : "secondary") + " me-2", c.state));
    li.appendChild(el("span", "text-muted me-2", c.created + " · " + c.category + " · " + c.compound + " " + c.building));
    li.appendChild(el("span", "", c.description));
    return li;
  }

  // ---- buildings of the chosen compound, filtered while typing (Enter picks the best match)
  var buildingSearch = document.getElementById("building-search");
  var buildingHelp = document.getElementById("building-help");
  function buildingScore(o, q) {
    var name = o.textContent.trim().toLowerCase();
    if (name === q) { return 0; }
    if (name.replace(/[栋幢号楼座]+$/, "") === q) { return 1; }
    if (name.indexOf(q) === 0) { return 2; }
    return name.indexOf(q) > 0 ? 3 : 99;
  }
  function filterBuildings() {
    var q = buildingSearch ? buildingSearch.value.trim().toLowerCase() : "";
    var best = null, bestScore = 99, shown = 0;
    Array.prototype.forEach.call(building.options, function (o) {
      var inCompound = !o.value || o.getAttribute("data-compound") === compound.value;
      var s = !o.value ? (q ? 98 : 50) : (q ? buildingScore(o, q) : 50);
      var show = inCompound && (!o.value || s < 99);
      o.hidden = !show; o.disabled = !show;
      if (!show && o.selected) { building.value = ""; }
      if (show && o.value) {
        shown += 1;
        if (s < bestScore) { best = o; bestScore = s; }
      }
    });
    if (buildingHelp) {
      buildingHelp.textContent = !compound.value ? buildingHelp.getAttribute("data-label-compound")
        : (q && !shown ? buildingHelp.getAttribute("data-label-none") : "");
    }
    return q ? best : null;
  }
  function pickBuilding() {
    var best = filterBuildings();
    if (best && (!building.value || building.selectedOptions[0].hidden || building.value !== best.value)) {
      building.value = best.value;
      duplicates();
    }
    return best;
  }
  if (buildingSearch) {
    buildingSearch.addEventListener("input", pickBuilding);
    buildingSearch.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        if (pickBuilding() && unit) { unit.focus(); }
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        building.focus();
      }
    });
  }

  // ---- category picker
  var options = Array.prototype.slice.call(category.options).filter(function (o) { return o.value; });
  function score(o, q) {
    var keys = (o.getAttribute("data-search") || "").split(" ");
    var best = 99;
    keys.forEach(function (k, i) {
      if (!k) { return; }
      if (k === q) { best = Math.min(best, 0); }
      else if (k.indexOf(q) === 0) { best = Math.min(best, 1 + (i % 3)); }
      else if (k.indexOf(q) > 0) { best = Math.min(best, 10); }
    });
    return best;
  }
  function filterCategories() {
    var q = search.value.trim().toLowerCase();
    var ranked = [];
    options.forEach(function (o) {
      var s = q ? score(o, q) : 50;
      var show = s < 99;
      o.hidden = !show;
      if (show) { ranked.push([s, o]); }
    });
    ranked.sort(function (a, b) { return a[0] - b[0]; });
    if (q && ranked.length && (!category.value || category.selectedOptions[0].hidden)) {
      category.value = ranked[0][1].value;
      showCategory();
    }
  }
  function showCategory() {
    var o = category.selectedOptions && category.selectedOptions[0];
    if (!o || !o.value) { info.textContent = ""; return; }
    info.textContent = o.textContent + " · " + o.getAttribute("data-urgency") + " · " + o.getAttribute("data-workflow");
    info.classList.toggle("text-danger", o.getAttribute("data-urgent") === "1");
    duplicates();
  }
  search.addEventListener("input", function () { category.value = ""; filterCategories(); });
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      filterCategories();
      if (category.value) { compound.focus(); }
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      category.focus();
    }
  });
  category.addEventListener("change", showCategory);

  // ---- caller history
  var lastPhone = "";
  function callers() {
    var digits = phone.value.replace(/[\s-]/g, "");
    if (!/^1[3-9]\d{9}$/.test(digits) || digits === lastPhone) { return; }
    lastPhone = digits;
    fetch(form.getAttribute("data-callers-url") + "?phone=" + encodeURIComponent(digits), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { cases: [] }; })
      .then(function (data) {
        var box = document.getElementById("caller-history");
        var list = box.querySelector("ul");
        var title = box.querySelector("div");
        list.textContent = "";
        title.textContent = data.cases.length ? title.getAttribute("data-label-found") : title.getAttribute("data-label-none");
        data.cases.forEach(function (c) { list.appendChild(caseItem(c)); });
        box.hidden = false;
        if (data.name && !nameInput.value) { nameInput.value = data.name; }
        if (data.compound_id && !compound.value) {
          compound.value = String(data.compound_id);
          filterBuildings();
          if (data.building_id) { building.value = String(data.building_id); }
          if (data.unit && unit && !unit.value) { unit.value = data.unit; }
          duplicates();
        }
      })
      .catch(function () {});
  }
  phone.addEventListener("input", callers);
  phone.addEventListener("change", callers);

  // ---- duplicate hint as soon as category and compound are chosen
  var lastQuery = "";
  function duplicates() {
    if (!category.value || !compound.value) { return; }
    var query = "category=" + encodeURIComponent(category.value) + "&compound=" + encodeURIComponent(compound.value) +
      "&building=" + encodeURIComponent(building.value || "");
    if (query === lastQuery) { return; }
    lastQuery = query;
    fetch(form.getAttribute("data-duplicates-url") + "?" + query, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { cases: [] }; })
      .then(function (data) {
        var box = document.getElementById("duplicate-hint");
        var list = box.querySelector("ul");
        list.textContent = "";
        data.cases.forEach(function (c) { list.appendChild(caseItem(c)); });
        box.hidden = !data.cases.length;
      })
      .catch(function () {});
  }
  compound.addEventListener("change", function () {
    if (buildingSearch) { buildingSearch.value = ""; }
    filterBuildings(); duplicates();
  });
  building.addEventListener("change", duplicates);

  filterBuildings();
  if (category.value) { showCategory(); }
  var invalid = form.querySelector(".is-invalid");
  if (invalid) { invalid.focus(); }
})();
