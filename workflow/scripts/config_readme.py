"""Write config/README.md, every config key with its type and description, from the config schema.

    python workflow/scripts/config_readme.py            # (`make docs`) rewrites config/README.md
    python workflow/scripts/config_readme.py --check    # exit 1 if config/README.md is not what it would write

Nested keys are dotted (`demo.seed`); `<name>` stands for a key the user chooses (a model's name). The
descriptions are the schema's (workflow/schemas/config.schema.yaml): edit them there, not in the README.
tests/unit/test_docs.py checks that the README is current and names every key of config/config.yaml.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
README = ROOT / "config" / "README.md"

HEADER = """\
# Configuration

<!-- Written by workflow/scripts/config_readme.py (`make docs`) from the descriptions in
workflow/schemas/config.schema.yaml: edit those, not this file. -->

The workflow reads `config/config.yaml` (the defaults: the simulated demo cohort), and any
`--configfile` on top of it, key by key:

| file | what for |
|---|---|
| [`config.yaml`](config.yaml) | the defaults: the simulated demo cohort (`make demo`) |
| [`paper.yaml`](paper.yaml) | the papers' settings for your own BIDS dataset |
| [`apply.yaml`](apply.yaml) | apply bundled models to a dataset: no labels, no training |
| [`reproduce.yaml`](reproduce.yaml) | every method of the papers' tables (`make reproduce`) |

```bash
snakemake --cores all --use-conda --configfile config/paper.yaml --config bids_dir=/path/to/bids
```

The merged configuration is validated against
[`workflow/schemas/config.schema.yaml`](../workflow/schemas/config.schema.yaml) before anything runs: a
misspelt key or a wrong type stops Snakemake with a message naming it. How-tos (participants, methods,
models, ablations, cohorts): [docs/configuration.md](../docs/configuration.md).

Below, every key: nested keys are dotted (`demo.seed`), and `<name>` stands for a name you choose (a
model's, a QSM method's, a cohort's).
"""


def resolve(schema: dict, node: dict) -> dict:
    """The node with its `$ref` (a JSON pointer into the schema) filled in; the node's own keys win."""
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def value(item: object) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def type_of(schema: dict, node: dict) -> str:
    """A short type: `integer ≥ 1`, `array[3] of number > 0`, `a, b or c` (an enum), `null or array`."""
    node = resolve(schema, node)
    if "enum" in node:
        *first, last = [value(item) for item in node["enum"]]
        return f"{', '.join(first)} or {last}" if first else last
    for combined in ("oneOf", "anyOf"):
        if combined in node and "type" not in node:
            return " or ".join(type_of(schema, option) for option in node[combined])
    kinds = node.get("type", "object")
    text = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if text == "array" and "items" in node:
        count = node.get("minItems") if node.get("minItems") == node.get("maxItems") else None
        text = f"array{f'[{count}]' if count else ''} of {type_of(schema, node['items'])}"
    bounds = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    limits = [f"{sign} {node[key]}" for key, sign in bounds.items() if key in node]
    return text + (" " + ", ".join(limits) if limits else "")


def describe(node: dict) -> str:
    text = node.get("description", "")
    undescribed = [key for key in node.get("propertyNames", {}).get("enum", []) if key not in node.get("properties", {})]
    if undescribed:  # keys the schema allows but does not describe one by one
        text += ". Keys: " + ", ".join(f"`{key}`" for key in undescribed)
    if "see" in node:
        text += f"; its keys as under `{node['see']}`"
    if "default" in node:
        text += f". Default: `{value(node['default'])}`"
    return text.replace("|", "\\|")


def rows(schema: dict, node: dict, prefix: str = "", seen: dict | None = None) -> Iterator[tuple[str, dict]]:
    """(dotted key, schema node) of every key below `node`, depth first, in the schema's order. A `$ref` to
    keys already listed is not expanded again: its node says under which key (`see`) they are."""
    seen = {f"#/properties/{name}": name for name in schema["properties"]} if seen is None else seen
    for key, child in children(schema, node, prefix):
        ref = child.get("$ref")
        if ref in seen:
            yield key, {**resolve(schema, child), "see": seen[ref]}
            continue
        if ref and children(schema, child, ""):
            seen[ref] = key
        yield key, resolve(schema, child)
        yield from rows(schema, child, key + ".", seen)


def children(schema: dict, node: dict, prefix: str) -> list[tuple[str, dict]]:
    """The keys directly below `node`: its properties, and `<name>` for the keys a user names."""
    node = resolve(schema, node)
    keys = [(prefix + name, child) for name, child in node.get("properties", {}).items()]
    if isinstance(node.get("additionalProperties"), dict):
        keys.append((prefix + "<name>", node["additionalProperties"]))
    return keys


def render(schema: dict) -> str:
    """The whole README: a table of the top-level keys, then a section per nested one."""
    def table(entries: list[tuple[str, dict]]) -> list[str]:
        return ["| key | type | description |", "|---|---|---|"] + [
            f"| `{key}` | {type_of(schema, node)} | {describe(node)} |" for key, node in entries]

    top = list(schema["properties"].items())
    seen = {f"#/properties/{name}": name for name, _ in top}  # shared: a $ref is expanded once in the README
    lines = [HEADER, "## Top-level keys", "", *table(top)]
    for name, node in top:
        nested = list(rows(schema, node, name + ".", seen))
        if nested:
            lines += ["", f"## `{name}`", "", *table(nested)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(yaml.safe_load(SCHEMA.read_text()))
    if "--check" in argv:
        current = README.read_text() if README.exists() else ""
        if current != text:
            print(f"{README.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
