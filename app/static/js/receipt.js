// The receipt's print button (no inline handlers under the Content-Security-Policy).
(function () {
  "use strict";
  var button = document.getElementById("print-now");
  if (button) { button.addEventListener("click", function () { window.print(); }); }
})();
