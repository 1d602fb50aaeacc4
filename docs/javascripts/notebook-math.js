// Intentionally empty. mkdocs-jupyter adds a <script> for MathJax to every tutorial page and
// defaults to a CDN; mkdocs.yml points it here instead. Formulas are rendered by KaTeX
// (javascripts/katex-init.js), which is served with the site.
