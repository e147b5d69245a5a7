// atwill dashboard: dialogs, confirmations, live tables (server-sent events), image upload.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var base = document.body.dataset.base, csrf = document.body.dataset.csrf;

  document.querySelectorAll("[data-open]").forEach(function (button) {
    var dialog = document.getElementById(button.dataset.open);
    button.addEventListener("click", function () { dialog.showModal(); });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });

  // Copy a read-only text (the join command): selected first, so Ctrl+C works too
  // where the browser refuses the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var text = document.getElementById(button.dataset.copy);
    var state = document.getElementById("copy-state");
    button.addEventListener("click", function () {
      text.focus();
      text.select();
      var said = function (message) { if (state) { state.textContent = message; } };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text.value).then(
          function () { said("Copied."); },
          function () { said("Selected: press Ctrl+C to copy."); });
      } else {
        said("Selected: press Ctrl+C to copy.");
      }
    });
  });

  document.querySelectorAll("table[data-live]").forEach(live);
  document.querySelectorAll("pre[data-follow]").forEach(follow);
  document.querySelectorAll("[data-live-html]").forEach(liveHtml);
  var upload = document.querySelector("form[data-upload]");
  if (upload) { upload.addEventListener("submit", function (e) { send(e, upload); }); }

  function live(table) {
    var columns = table.dataset.columns.split(" "), body = table.tBodies[0];
    var source = new EventSource(table.dataset.live);
    source.onmessage = function (message) { update(JSON.parse(message.data)); };
    source.addEventListener("end", function () { source.close(); });

    function update(rows) {
      var seen = {};
      rows.forEach(function (row, index) {
        seen[row.id] = true;
        var tr = body.querySelector('tr[data-id="' + CSS.escape(row.id) + '"]') || make(row);
        columns.forEach(function (col) {
          var cell = tr.querySelector('[data-col="' + col + '"]');
          var target = cell.querySelector("a") || cell;
          if (target.textContent !== row.cells[col]) { target.textContent = row.cells[col]; }
        });
        if (body.rows[index] !== tr) { body.insertBefore(tr, body.rows[index] || null); }
      });
      Array.prototype.slice.call(body.rows).forEach(function (tr) {
        if (!seen[tr.dataset.id]) { tr.remove(); }
      });
      var empty = table.closest("main").querySelector(".empty");
      if (empty) { empty.hidden = rows.length > 0; }
    }

    function make(row) {
      var tr = document.createElement("tr");
      tr.dataset.id = row.id;
      columns.forEach(function (col, i) {
        var td = document.createElement("td");
        td.dataset.col = col;
        if (i === 0 && table.dataset.href) {
          var a = document.createElement("a");
          a.href = table.dataset.href + encodeURIComponent(row.id);
          td.appendChild(a);
        }
        tr.appendChild(td);
      });
      return tr;
    }
  }

  // A part rendered by the server (escaped there) and replaced whole on each change.
  function liveHtml(element) {
    var source = new EventSource(element.dataset.liveHtml);
    source.onmessage = function (message) { element.innerHTML = JSON.parse(message.data).html; };
    source.addEventListener("end", function () { source.close(); });
  }

  // A console log followed live: each message is its whole tail; the view stays at
  // the bottom unless the reader scrolled up to read.
  function follow(pre) {
    var source = new EventSource(pre.dataset.follow);
    var state = document.getElementById("follow-state");
    source.onmessage = function (message) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = JSON.parse(message.data).output;
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    };
    source.addEventListener("end", function () {
      source.close();
      if (state) { state.textContent = "No longer following: reload the page."; }
    });
  }

  function send(event, form) {
    event.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    var progress = form.querySelector("progress"), status = form.querySelector("[role=status]");
    var fields = new URLSearchParams(new FormData(form));
    fields.delete("file");
    status.textContent = "Creating the image…";
    fetch(form.action, {method: "POST", body: fields, credentials: "same-origin"})
      .then(function (resp) {
        if (!resp.ok) { throw new Error("The image was refused (" + resp.status + ")."); }
        return resp.json();
      })
      .then(function (image) {
        var xhr = new XMLHttpRequest();
        xhr.open("PUT", base + "/images/" + encodeURIComponent(image.id) + "/file");
        xhr.setRequestHeader("X-CSRF-Token", csrf);
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        progress.hidden = false;
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) { progress.value = Math.round(100 * e.loaded / e.total); }
        };
        xhr.onload = function () {
          if (xhr.status < 300) { status.textContent = "Uploaded."; window.location.reload(); }
          else { status.textContent = "The upload failed (" + xhr.status + ")."; }
        };
        xhr.onerror = function () { status.textContent = "The upload failed."; };
        status.textContent = "Uploading…";
        xhr.send(file);
      })
      .catch(function (error) { status.textContent = error.message; });
  }
});
