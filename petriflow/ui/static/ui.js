// The only client code: on a run's net page, poll its state and swap the picture when the marking changes.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var run = live.dataset.run, key = live.dataset.key;
  var base = "/runs/" + run.split("/").map(encodeURIComponent).join("/");
  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }
  function tick() {
    fetch(base + "/state.json", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        document.getElementById("title").textContent = s.title;
        document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
        var body = document.getElementById("states");
        body.querySelectorAll("tr").forEach(function (tr) {
          var per = s.counts[tr.dataset.step] || {}, tds = tr.querySelectorAll("td");
          var names = ["running", "waiting for a resource", "waiting for a human", "stuck", "done"];
          names.forEach(function (n, i) {
            var td = tds[i + 1]; td.textContent = per[n] || "";
            td.classList.toggle("hot", !!per[n] && n !== "done");
          });
        });
        if (s.key !== key) {
          key = s.key; live.dataset.key = key;
          document.getElementById("net").src = base + "/net.svg?k=" + key;
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, 1000); });
  }
  setTimeout(tick, 1000);
})();
