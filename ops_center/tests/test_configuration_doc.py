"""The documentation stays true to the code and reachable from the front door.

* Every environment variable the settings read (found by parsing the settings
  module that manage.py names, not by importing it) is in the tables of
  docs/configuration.md, and every variable those tables say the settings read
  is still read.
* Every docs/*.md file is linked from README.md, every relative link in the
  README and the docs leads to a file (and heading) that exists, and the README
  stays a front door of at most README_MAX_CHARS characters.
"""

import ast
import re
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
README = PROJECT_DIR / "README.md"
DOCS = PROJECT_DIR / "docs"
CONFIGURATION_DOC = DOCS / "configuration.md"
README_MAX_CHARS = 12_500
# The heading of configuration.md's section that lists what the settings read.
SETTINGS_SECTION = "## Environment variables read by the settings"
# Fewer than this many found means the reader below lost track of how the settings read the environment.
PLAUSIBLE_MINIMUM = 10

FENCED_BLOCK = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TABLE_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
# Methods of os.environ that read a variable.
ENVIRON_READS = ("get", "setdefault", "pop")


# -- The environment variables the settings read -------------------------------------------------


def settings_module_name() -> str:
    manage = (PROJECT_DIR / "manage.py").read_text()
    found = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""", manage)
    assert found, "manage.py no longer names a default DJANGO_SETTINGS_MODULE"
    return found.group(1)


def settings_files() -> list[Path]:
    """The settings module's file, or every module of it when it is a package."""
    base = PROJECT_DIR.joinpath(*settings_module_name().split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    path = base.with_suffix(".py")
    assert path.is_file(), f"no settings module at {path.relative_to(PROJECT_DIR)}"
    return [path]


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ`` (``from os import environ``)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _is_env_reader(node: ast.AST) -> bool:
    """``env(...)``, ``env.str(...)``, ``env.bool(...)``, ...: django-environ's ``Env`` instance, named env."""
    if isinstance(node, ast.Name):
        return node.id == "env"
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "env"


def environment_reads(source: str) -> set[str]:
    """Names of the environment variables a module reads, in every way this project's settings do or might."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            first = _text(node.args[0])
            func = node.func
            if first is None:
                continue
            if _is_env_reader(func):  # env.int("CONN_MAX_AGE", default=60)
                names.add(first)
            elif isinstance(func, ast.Attribute) and func.attr in ENVIRON_READS and _is_environ(func.value):
                names.add(first)  # os.environ.get("X")
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                names.add(first)  # os.getenv("X")
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            if (name := _text(node.slice)) is not None:
                names.add(name)  # os.environ["X"]
        elif isinstance(node, ast.Compare) and any(_is_environ(item) for item in node.comparators):
            if (name := _text(node.left)) is not None:
                names.add(name)  # "X" in os.environ
    return names


def settings_environment_variables() -> set[str]:
    names: set[str] = set()
    for path in settings_files():
        names |= environment_reads(path.read_text())
    return names


# -- What configuration.md documents ------------------------------------------------------------


def _without_code(markdown: str) -> str:
    return FENCED_BLOCK.sub("", markdown)


def table_names(markdown: str) -> set[str]:
    """The upper-case names in backticks in the first cell of each table row."""
    names: set[str] = set()
    for line in _without_code(markdown).splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            names.update(TABLE_NAME.findall(line.split("|")[1]))
    return names


def settings_section(markdown: str) -> str:
    start = markdown.index(SETTINGS_SECTION)
    end = markdown.find("\n## ", start + len(SETTINGS_SECTION))
    return markdown[start : end if end != -1 else len(markdown)]


# -- Links and headings -------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, heading in HEADING.findall(_without_code(path.read_text())):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(_without_code(path.read_text()))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# -- Tests --------------------------------------------------------------------------------------


def test_the_reader_finds_each_way_of_reading_the_environment():
    source = """
import os
from os import environ, getenv
import environ as django_environ
env = django_environ.Env()
A = env.str("VIA_ENV_STR", default="")
B = env("VIA_ENV_CALL")
C = env.db("VIA_ENV_DB", default="sqlite://")
D = os.environ.get("VIA_OS_ENVIRON_GET", "x")
E = os.environ["VIA_OS_ENVIRON_ITEM"]
F = os.getenv("VIA_OS_GETENV")
G = getenv("VIA_GETENV")
H = environ.get("VIA_ENVIRON_GET")
I = "VIA_IN" in os.environ
os.environ.setdefault("VIA_SETDEFAULT", "1")
NOT_READ = {"NOT_AN_ENV_READ": 1}.get("ALSO_NOT")
"""
    assert environment_reads(source) == {
        "VIA_ENV_STR",
        "VIA_ENV_CALL",
        "VIA_ENV_DB",
        "VIA_OS_ENVIRON_GET",
        "VIA_OS_ENVIRON_ITEM",
        "VIA_OS_GETENV",
        "VIA_GETENV",
        "VIA_ENVIRON_GET",
        "VIA_IN",
        "VIA_SETDEFAULT",
    }


def test_the_settings_read_a_plausible_number_of_variables():
    found = settings_environment_variables()

    assert len(found) > PLAUSIBLE_MINIMUM, sorted(found)
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"} <= found


def test_every_variable_the_settings_read_is_in_the_configuration_tables():
    documented = table_names(CONFIGURATION_DOC.read_text())

    missing = settings_environment_variables() - documented

    assert not missing, f"add these to a table in docs/configuration.md: {sorted(missing)}"


def test_every_variable_documented_as_read_by_the_settings_is_still_read():
    documented = table_names(settings_section(CONFIGURATION_DOC.read_text()))

    stale = documented - settings_environment_variables()

    assert len(documented) > PLAUSIBLE_MINIMUM, sorted(documented)
    assert not stale, f"the settings no longer read these; update docs/configuration.md: {sorted(stale)}"


def test_the_readme_is_a_front_door():
    length = len(README.read_text())

    assert length <= README_MAX_CHARS, f"README.md has {length} characters; move detail into docs/"


def test_every_doc_is_linked_from_the_readme():
    linked = {link.split("#", 1)[0] for link in relative_links(README)}
    docs = {f"docs/{path.name}" for path in DOCS.glob("*.md")}

    assert len(docs) > PLAUSIBLE_MINIMUM
    assert docs - linked == set(), "link these from the README's table of docs"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(PROJECT_DIR).as_posix())
def test_relative_links_lead_somewhere(path):
    broken = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        target_path = (path.parent / target).resolve() if target else path
        if not target_path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target_path.suffix == ".md" and anchor not in anchors(target_path):
            broken.append(f"{link}: no such heading")

    assert broken == []
