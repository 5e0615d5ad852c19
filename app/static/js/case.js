// Case page behaviour (no inline scripts: the pages run under a strict Content-Security-Policy).
// - "are you sure?" after validation: see confirm.js (every page);
// - image inputs with data-resize shrink photos in the browser before upload (longest side in pixels).
(function () {
  "use strict";

  function resize(file, maxSide) {
    return new Promise(function (resolve) {
      if (!file.type || file.type.indexOf("image/") !== 0 || file.type === "image/gif") { resolve(file); return; }
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        URL.revokeObjectURL(url);
        var scale = Math.min(1, maxSide / Math.max(img.naturalWidth, img.naturalHeight));
        if (scale >= 1 && file.size < 1500000) { resolve(file); return; }
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(function (blob) {
          if (!blob) { resolve(file); return; }
          var name = file.name.replace(/\.[^.]+$/, "") + ".jpg";
          resolve(new File([blob], name, { type: "image/jpeg" }));
        }, "image/jpeg", 0.85);
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.hasAttribute("data-resize")) { return; }
    var maxSide = parseInt(input.getAttribute("data-resize"), 10) || 1600;
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.length || typeof DataTransfer === "undefined") { return; }
    Promise.all(files.map(function (f) { return resize(f, maxSide); })).then(function (done) {
      var transfer = new DataTransfer();
      done.forEach(function (f) { transfer.items.add(f); });
      input.files = transfer.files;
    });
  });
})();
