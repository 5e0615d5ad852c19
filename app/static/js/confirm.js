// Forms that ask "are you sure?" (data-confirm) and the case page's action forms: the question comes
// only once the form is valid — the first invalid field gets the focus instead — and the submit button
// is disabled after one click. One handler for every page (inline onsubmit handlers are forbidden by the
// Content-Security-Policy).
(function () {
  "use strict";

  function firstInvalid(form) {
    var fields = form.querySelectorAll("input, select, textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].willValidate && !fields[i].checkValidity()) { return fields[i]; }
    }
    return null;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    if (!form.classList.contains("case-action-form") && !form.hasAttribute("data-confirm")) { return; }
    var bad = firstInvalid(form);
    if (bad) {
      event.preventDefault();
      bad.classList.add("is-invalid");
      bad.focus();
      if (bad.reportValidity) { bad.reportValidity(); }
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var button = form.querySelector("button[type=submit]");
    if (button) { window.setTimeout(function () { button.disabled = true; }, 0); }
  }, true);
})();
