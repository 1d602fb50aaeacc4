// Render formulas with the vendored KaTeX (no CDN).
// Markdown pages: pymdownx.arithmatex (generic mode) wraps math in .arithmatex elements using
// \( \) and \[ \] delimiters. Tutorial pages (mkdocs-jupyter) keep the notebook's $ and $$.
(function () {
  function renderMath(root) {
    if (typeof renderMathInElement !== "function") {
      return;
    }
    renderMathInElement(root, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "\\[", right: "\\]", display: true },
        { left: "\\(", right: "\\)", display: false },
        { left: "$", right: "$", display: false },
      ],
      ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code"],
      throwOnError: false,
    });
  }
  if (typeof document$ !== "undefined") {
    // mkdocs-material: re-render after every (instant) page load.
    document$.subscribe(function () {
      renderMath(document.body);
    });
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      renderMath(document.body);
    });
  }
})();
