// 12345 upload: show the upload's progress for large exports, then show the server's answer.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("hotline-upload");
  var bar = document.getElementById("hotline-progress");
  if (!form || !bar || !window.FormData) {
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    bar.classList.remove("d-none");
    bar.value = 0;
    bar.title = form.dataset.uploading || "";
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((100 * e.loaded) / e.total);
      }
    });
    request.upload.addEventListener("load", function () {
      bar.removeAttribute("value"); // indeterminate while the server checks the rows
    });
    request.addEventListener("load", function () {
      document.open();
      document.write(request.responseText);
      document.close();
    });
    request.addEventListener("error", function () {
      form.submit();
    });
    request.send(new FormData(form));
  });
});
