// Forms with data-confirm="question" ask before submitting (replaces inline onsubmit handlers,
// which the Content-Security-Policy forbids).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
