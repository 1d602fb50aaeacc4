// Click a figure that is shown smaller than it was drawn to see it as wide as the window
// (tutorial figures are often wider than the text column). Click again or press Esc to close.
(function () {
  "use strict";

  function open(img) {
    const box = document.createElement("div");
    box.className = "sbflow-lightbox";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "Figure at full size (click or press Esc to close)");
    const big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt || "";
    box.appendChild(big);
    function close() {
      box.remove();
      document.removeEventListener("keydown", onKey);
    }
    function onKey(event) {
      if (event.key === "Escape") close();
    }
    box.addEventListener("click", close);
    document.addEventListener("keydown", onKey);
    document.body.appendChild(box);
  }

  function shrunk(img) {
    return img.naturalWidth > img.clientWidth * 1.05;
  }

  function mark() {
    document.querySelectorAll(".md-content img").forEach(function (img) {
      if (img.dataset.sbflowZoom || img.closest("a")) return;
      img.dataset.sbflowZoom = "1";
      const update = function () {
        img.classList.toggle("sbflow-zoomable", shrunk(img));
      };
      if (img.complete) update();
      else img.addEventListener("load", update);
      window.addEventListener("resize", update);
      img.addEventListener("click", function () {
        if (shrunk(img)) open(img);
      });
    });
  }

  // Material's instant navigation re-renders pages without a full load: follow it if present.
  if (typeof document$ !== "undefined") document$.subscribe(mark);
  else if (document.readyState !== "loading") mark();
  else document.addEventListener("DOMContentLoaded", mark);
})();
