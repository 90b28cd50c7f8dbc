"""The documents: config/README.md is current and complete, the README is short, and every link resolves.

- config/README.md is exactly what workflow/scripts/config_readme.py writes from the config schema now
  (`make docs` rewrites it), every schema key has a description, and every key of config/config.yaml is
  named in it (keys inside free-form mappings, such as a model's `options`, are not config keys of ours).
- README.md is at most 100 lines.
- Every relative Markdown link and image in README.md, config/README.md and docs/**/*.md points at a file
  or folder of the repository, and every `#anchor` (in the same file or `file.md#anchor`) is a heading of
  its target, by GitHub's slug rules (lowercase, punctuation removed, spaces to hyphens, `-1`, `-2`, ... for
  repeats). External http(s) links are only checked to be well-formed URLs: the tests need no network, and
  CI may have none.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from helpers import ROOT

DOCUMENTS = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def load_generator():
    spec = importlib.util.spec_from_file_location("config_readme", ROOT / "workflow" / "scripts" / "config_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
SCHEMA = yaml.safe_load(GENERATOR.SCHEMA.read_text())


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text without Markdown, lowercased, punctuation dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text()):
        if match := HEADING.match(line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text()):
        line = re.sub(r"`[^`]*`", "``", line)  # a code span shows a link, it is none
        targets += LINK.findall(line)
    return targets


def test_config_readme_is_current():
    written = GENERATOR.render(SCHEMA)
    assert GENERATOR.README.read_text() == written, "config/README.md is stale: run `make docs`"


def test_every_schema_key_has_a_description():
    missing = [key for key, node in GENERATOR.rows(SCHEMA, SCHEMA) if not node.get("description")]
    assert not missing, f"keys without a description in workflow/schemas/config.schema.yaml: {missing}"


def documented_keys(node: dict, config: dict, prefix: str = ""):
    """The dotted name under which config/README.md describes each key of `config` (`<name>` for a key the
    user names); keys inside free-form mappings are left out."""
    node = GENERATOR.resolve(SCHEMA, node)
    for key, value in config.items():
        if key in node.get("properties", {}):
            child, name = node["properties"][key], key
        elif isinstance(node.get("additionalProperties"), dict):
            child, name = node["additionalProperties"], "<name>"
        else:
            continue
        yield prefix + name
        if isinstance(value, dict):
            yield from documented_keys(child, value, f"{prefix}{name}.")


def test_config_readme_names_every_key_of_the_default_config():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    text = GENERATOR.README.read_text()
    # keys the README lists once, under another key (`linus_experiments.models.<name>` as `models.<name>`)
    aliases = {key: node["see"] for key, node in GENERATOR.rows(SCHEMA, SCHEMA) if "see" in node}
    keys = set()
    for key in documented_keys(SCHEMA, config):
        alias = next((alias for alias in aliases if key.startswith(alias + ".")), None)
        keys.add(aliases[alias] + key[len(alias):] if alias else key)
    assert {"demo.seed", "models.<name>.training.max_epochs", "qsm.methods.<name>.inversion"} <= keys
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"config/config.yaml keys that config/README.md does not describe: {missing}"


def test_readme_fits_on_two_screens():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 100, f"README.md has {len(lines)} lines; move detail into docs/"


def test_slug_follows_github():
    assert slug("The demo (`make demo`)") == "the-demo-make-demo"
    assert slug("The MI-ST optimizer (our reading)") == "the-mi-st-optimizer-our-reading"
    assert slug("`linus_experiments`") == "linus_experiments"
    assert slug("The demo's models") == "the-demos-models"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_resolve(document: Path):
    broken = []
    for target in links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            url = urlparse(target)
            if url.scheme in ("http", "https") and not url.netloc:
                broken.append(f"{target}: not a well-formed URL")
            continue  # external: not fetched
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or ROOT not in (linked, *linked.parents):
            broken.append(f"{target}: no such file in the repository")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)
