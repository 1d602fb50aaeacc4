"""Checks on the documentation: the site's structure, the docstrings it renders, the code on its
Markdown pages, and the guarantee that a tutorial which raises fails the build.

The build tests need the ``docs`` extra (mkdocs, mkdocs-jupyter); they skip without it. The
whole site is built (tutorials executed) by ``SBFLOW_QUICK=1 mkdocs build --strict``.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sbflow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"


def _config() -> dict:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        """Tolerates the ``!ENV`` and ``!!python/name:`` tags mkdocs allows."""

    def any_tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    Loader.add_multi_constructor("", any_tag)
    return yaml.load(MKDOCS_YML.read_text(encoding="utf-8"), Loader=Loader)


def _nav_files() -> list[str]:
    """Every page path in the ``nav`` of mkdocs.yml (read without a YAML parser: the default test
    environment has none)."""
    text = MKDOCS_YML.read_text(encoding="utf-8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r"^\s*- (?:[^:\n]+: )?([\w./-]+\.(?:md|py|ipynb))\s*$", nav, re.MULTILINE)


# --- (c) structure -------------------------------------------------------------------------


def test_every_nav_page_exists():
    pages = _nav_files()
    assert len(pages) >= 10, pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml nav points to missing pages: {missing}"


def test_every_tutorial_is_in_the_nav_and_in_percent_format():
    pages = set(_nav_files())
    tutorials = sorted((DOCS / "tutorials").glob("*.py"))
    assert tutorials, "no tutorials found under docs/tutorials/"
    for path in tutorials:
        rel = path.relative_to(DOCS).as_posix()
        assert rel in pages, f"{rel} is not in the mkdocs.yml nav"
        text = path.read_text(encoding="utf-8")
        assert "# %%" in text, f"{rel} is not a jupytext percent-format script"
        assert "SBFLOW_QUICK" in text, f"{rel} has no quick mode (SBFLOW_QUICK)"


def test_build_is_configured_offline_and_strict_about_tutorials():
    cfg = _config()
    assert cfg["theme"]["font"] is False, "Google fonts must stay off (offline build)"
    plugins: dict = {}
    for entry in cfg["plugins"]:
        plugins.update(entry if isinstance(entry, dict) else {entry: {}})
    assert "privacy" not in plugins and "social" not in plugins
    jupyter = plugins["mkdocs-jupyter"]
    assert jupyter["execute"] is True and jupyter["allow_errors"] is False
    assert jupyter["cache"] is False
    assert "://" not in jupyter["custom_mathjax_url"], "tutorial pages must not load a CDN"
    python = plugins["mkdocstrings"]["handlers"]["python"]
    assert "import" not in python and "inventories" not in python
    for asset in cfg.get("extra_javascript", []) + cfg.get("extra_css", []):
        assert "://" not in asset, f"remote asset {asset}"
        assert (DOCS / asset).is_file(), f"missing asset {asset}"


def test_installation_page_quotes_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = (DOCS / "installation.md").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]*)\n```", readme)
    assert len(commands) == 2, commands
    for command in commands:
        assert command in install, f"installation.md does not quote: {command}"


# --- (b) docstrings ------------------------------------------------------------------------

_EXAMPLE = re.compile(r"^\s*Examples?:\s*$", re.MULTILINE)


def _public_modules() -> list[str]:
    names = ["sbflow"]
    for info in pkgutil.walk_packages(sbflow.__path__, prefix="sbflow."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return names


def _documented_objects() -> dict[str, object]:
    """``module.name -> object`` for every function and class in a public module's ``__all__``."""
    found: dict[str, object] = {}
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
                found[f"{module_name}.{name}"] = obj
    return found


def test_public_modules_declare_all():
    missing = [m for m in _public_modules() if not hasattr(importlib.import_module(m), "__all__")]
    assert not missing, f"public modules without __all__: {missing}"


# Names whose examples are still filler or missing: their owners are rewriting them. Remove a name
# once it passes (test_example_allow_list_only_holds_failing_names says when); the list must
# become empty. Keys are where the object is defined, as ``module.qualname``.
_EXAMPLE_ALLOW_LIST: dict[str, str] = {}

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _doctests(module_name: str) -> dict[str, doctest.DocTest]:
    """The docstring examples pytest collects from a module (``--doctest-modules``), by name."""
    module = importlib.import_module(module_name)
    return {t.name: t for t in doctest.DocTestFinder().find(module)}


def _example_problem(test: doctest.DocTest | None) -> str | None:
    """Why a docstring's examples do not show anything, or ``None`` when they do."""
    if test is None or not test.examples:
        return "no '>>>' example collected as a doctest"
    if not _EXAMPLE.search(test.docstring or ""):
        return "the examples are not under an 'Example:' section (Google style)"
    if all(ex.options.get(doctest.SKIP) for ex in test.examples):
        return "every example line is '# doctest: +SKIP'"
    if not any(ex.want.strip() for ex in test.examples):
        return "the example prints no result to check"
    if any(_ADDRESS.search(ex.want) for ex in test.examples):
        return "the expected output holds a memory address (a filler repr)"
    return None


def _public_example_problems() -> dict[str, str]:
    """``module.qualname -> problem`` over every function, class and module in an ``__all__``."""
    objects = _documented_objects()
    assert len(objects) > 20, sorted(objects)
    problems: dict[str, str] = {}
    for obj in objects.values():
        if inspect.ismodule(obj):
            key, home = obj.__name__, obj.__name__
        else:
            key, home = f"{obj.__module__}.{obj.__qualname__}", obj.__module__
        problem = _example_problem(_doctests(home).get(key))
        if problem is not None:
            problems[key] = problem
    return problems


def test_every_public_name_has_an_example_that_runs_as_a_doctest():
    """Each public name shows a checked result in a doctest (run by ``pytest``, see
    pyproject.toml and the root conftest.py)."""
    problems = _public_example_problems()
    new = {k: v for k, v in problems.items() if k not in _EXAMPLE_ALLOW_LIST}
    assert not new, "public names without a real docstring example:\n" + "\n".join(
        f"  {k}: {v}" for k, v in sorted(new.items())
    )


def test_example_allow_list_only_holds_failing_names():
    problems = _public_example_problems()
    fixed = sorted(k for k in _EXAMPLE_ALLOW_LIST if k not in problems)
    assert not fixed, f"these examples are real now; remove them from _EXAMPLE_ALLOW_LIST: {fixed}"


def test_no_docstring_example_is_skipped_entirely():
    """Private modules too: an example that never runs is not an example."""
    modules = ["sbflow"] + [
        info.name for info in pkgutil.walk_packages(sbflow.__path__, prefix="sbflow.")
    ]
    skipped = sorted(
        name
        for module_name in modules
        for name, test in _doctests(module_name).items()
        if test.examples
        and all(ex.options.get(doctest.SKIP) for ex in test.examples)
        and name not in _EXAMPLE_ALLOW_LIST
    )
    assert not skipped, f"docstring examples that never run (all '+SKIP'): {skipped}"


def test_pytest_runs_the_docstring_examples():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_config = config["tool"]["pytest"]["ini_options"]
    assert "sbflow" in pytest_config["testpaths"] and "tests" in pytest_config["testpaths"]
    assert "--doctest-modules" in pytest_config["addopts"].split()
    fixture = (ROOT / "conftest.py").read_text(encoding="utf-8")
    assert "doctest_namespace" in fixture and "manual_seed" in fixture


def test_every_public_name_is_rendered_in_the_api_reference():
    """Each name in a public module's ``__all__`` is rendered by a ``::: module`` directive of
    docs/api/*.md: its own module's, or an ancestor package's that re-exports it."""
    api = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    rendered = set(re.findall(r"^::: ([\w.]+)", api, flags=re.MULTILINE))
    missing = []
    for module_name in _public_modules():
        if module_name == "sbflow" or module_name in rendered:
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            covered = any(
                module_name.startswith(r + ".")
                and name in getattr(importlib.import_module(r), "__all__", [])
                and getattr(importlib.import_module(r), name) is obj
                for r in rendered
            )
            if not covered:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names not rendered by docs/api/*.md: {missing}"


# --- (a) a failing tutorial fails the build ------------------------------------------------

_TINY_CONFIG = """\
site_name: tiny
theme:
  name: mkdocs
plugins:
  - mkdocs-jupyter:
      include: ["*.py"]
      execute: true
      allow_errors: false
      cache: false
      kernel_name: python3
nav:
  - Home: index.md
  - Tutorial: tutorial.py
"""


def _tiny_build(tmp_path: Path, second_cell: str) -> subprocess.CompletedProcess:
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text(_TINY_CONFIG, encoding="utf-8")
    (tmp_path / "docs" / "index.md").write_text("# Tiny\n", encoding="utf-8")
    tutorial = f"# %% [markdown]\n# # A tutorial\n\n# %%\nx = 1 + 1\n\n# %%\n{second_cell}\n"
    (tmp_path / "docs" / "tutorial.py").write_text(tutorial, encoding="utf-8")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_tutorial_that_raises_fails_the_build(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_jupyter")
    result = _tiny_build(tmp_path, 'raise RuntimeError("tutorial broke on purpose")')
    assert result.returncode != 0, result.stdout + result.stderr
    assert "tutorial broke on purpose" in result.stdout + result.stderr
    assert not (tmp_path / "site" / "tutorial" / "index.html").exists()


def test_a_tutorial_that_runs_builds(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_jupyter")
    result = _tiny_build(tmp_path, 'print("answer", x * 21)')
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "tutorial" / "index.html").read_text(encoding="utf-8")
    assert "answer 42" in page


# --- code on the Markdown pages runs --------------------------------------------------------

_SKIP_MARK = "<!-- docs-test: skip"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a page, minus those preceded by a ``docs-test: skip`` comment."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].lstrip().startswith(_SKIP_MARK):
            continue
        blocks.append(match.group(1))
    return blocks


_PAGES_WITH_CODE = sorted(
    p.relative_to(DOCS).as_posix()
    for p in [*DOCS.glob("*.md"), *DOCS.glob("how-to/*.md")]
    if _python_blocks(p)
)


@pytest.mark.parametrize("page", _PAGES_WITH_CODE)
def test_code_on_page_runs(page, tmp_path, monkeypatch):
    """Run a page's Python blocks in order, in one namespace, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    pytest.importorskip("matplotlib").use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for k, block in enumerate(_python_blocks(DOCS / page)):
        code = compile(block, f"{page} [python block {k + 1}]", "exec")
        exec(code, namespace)


# --- the command-line tutorial is shell commands that the parser accepts --------------------


def _tutorial_shell_commands(name: str) -> list[list[str]]:
    """The ``# !sbflow ...`` lines of a tutorial, split like a shell would (``{STEPS}`` → 10)."""
    import shlex

    text = (DOCS / "tutorials" / name).read_text(encoding="utf-8")
    lines = re.findall(r"^# !sbflow (.+)$", text, re.MULTILINE)
    return [shlex.split(line.split("||")[0].replace("{STEPS}", "10")) for line in lines]


def test_cli_tutorial_is_shell_commands_the_parser_accepts():
    from sbflow.cli import build_parser

    commands = _tutorial_shell_commands("06_command_line.py")
    used = {argv[0] for argv in commands if not argv[0].startswith("-")}
    assert {"datasets", "couple", "fit", "transport", "evaluate", "plot"} <= used, used
    text = (DOCS / "tutorials" / "06_command_line.py").read_text(encoding="utf-8")
    assert "subprocess" not in text, "write the CLI tutorial as `!sbflow ...` shell lines"
    parser = build_parser()
    for argv in commands:
        if argv == ["--help"]:
            continue
        parser.parse_args(argv)  # an option renamed in cli.py fails here, not in the build


def test_tutorials_offer_a_download_and_figures_zoom():
    cfg = _config()
    jupyter = next(
        p["mkdocs-jupyter"] for p in cfg["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p
    )
    assert jupyter["include_source"] is True  # the .py is copied next to each page
    template = ROOT / cfg["theme"]["custom_dir"] / "main.html"
    assert "page.nb_url" in template.read_text(encoding="utf-8")
    assert "javascripts/zoom.js" in cfg["extra_javascript"]
    assert (DOCS / "javascripts" / "zoom.js").is_file()
