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

// The user form: only the scope fields the chosen role accepts are shown (data-role-scopes on the role
// select maps each role to its scope kinds). A field that already holds a value stays visible, so nothing
// is hidden that the server would then refuse; changing the role clears the fields it hides.
(function () {
  var role = document.querySelector("select[data-role-scopes]");
  if (!role) {
    return;
  }
  var scopes = JSON.parse(role.getAttribute("data-role-scopes"));
  var kinds = {};
  Object.keys(scopes).forEach(function (key) {
    scopes[key].forEach(function (kind) { kinds[kind] = true; });
  });
  function groupOf(field) {
    return field.closest(".form-group") || field.parentNode;
  }
  function apply(clear) {
    var wanted = scopes[role.value] || [];
    Object.keys(kinds).forEach(function (kind) {
      var field = document.getElementById(kind);
      if (!field) {
        return;
      }
      var show = wanted.indexOf(kind) >= 0 || (!clear && field.value !== "" && field.value !== "__None");
      if (!show && clear && field.value !== "") {
        field.value = "";
        if (window.jQuery) {
          window.jQuery(field).val("").trigger("change");
        }
      }
      groupOf(field).hidden = !show;
      groupOf(field).setAttribute("data-scope-field", kind);
    });
  }
  role.addEventListener("change", function () { apply(true); });
  if (window.jQuery) {
    window.jQuery(role).on("change", function () { apply(true); });
  }
  apply(false);
})();
