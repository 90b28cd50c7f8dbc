"""What the tests share, each in one place: the repository's paths (here), Snakemake runs (`runs`) and its API
(`api`), small datasets (`datasets`), tiny training runs (`training`), label maps (`labels`) and the viewer's
page in a browser (`page`). Test files import from here, never from one another."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "config" / "tiny.yaml"
# `reproduce` on the tiny cohort: every method of the papers' tables, tiny.yaml's cohort over reproduce.yaml's
TINY_REPRODUCE = [str(ROOT / "config" / "reproduce.yaml"), str(TINY), str(ROOT / "tests" / "config" / "tiny_reproduce.yaml")]
