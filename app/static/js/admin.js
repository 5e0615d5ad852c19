// Administration screens without inline event handlers (the Content-Security-Policy forbids them):
// Flask-Admin's templates are overridden in app/templates/admin/ to carry data-* attributes instead.
document.addEventListener("click", function (event) {
  var target = event.target;
  if (!target || !target.closest) {
    return;
  }
  var action = target.closest("[data-admin-action]");
  if (action) {
    event.preventDefault();
    if (window.modelActions) {
      window.modelActions.execute(action.getAttribute("data-admin-action"));
    }
    return;
  }
  var confirmed = target.closest("[data-admin-confirm]");
  if (confirmed && !window.confirm(confirmed.getAttribute("data-admin-confirm"))) {
    event.preventDefault();
    return;
  }
  // menu entries that only open something (filters, dropdowns, Flask-Admin's "javascript:void(0)"
  // tabs) must not follow their link: a javascript: URL would be refused by the policy
  if (target.closest(".field-filters a.filter, a[data-toggle='dropdown'][href='#'], a[href^='javascript:']")) {
    event.preventDefault();
  }
}, true);
