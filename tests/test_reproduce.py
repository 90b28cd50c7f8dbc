"""config/reproduce.yaml (the `reproduce` target): a method of ours beside every row of every table of both
papers, each model on its paper's recipe family; the tiny end-to-end run (tests/test_reproduce_run.py) checks the
tables it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepnuclei.models import get_spec
from deepnuclei.models.dbresunet import PAPER_RATE
from deepnuclei.plan import make_plan
from deepnuclei.tables import PAPER_RATE as TABLES_PAPER_RATE, paper_identity, paper_results
from deepnuclei.train import TrainConfig
from test_workflow import merged

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("DB-ResUNet Table I", "DB-ResUNet Table II", "DB-ResUNet Table III", "DB-ResUNet Table IV",
          "LiNUS Table II", "LiNUS Table III", "LiNUS Table VII", "LiNUS Table VIII", "LiNUS Table IX")


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    config = merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "config" / "reproduce.yaml").read_text()))
    return make_plan({**config, "results_dir": str(tmp_path_factory.mktemp("results"))})


def methods_of(plan, source: str) -> dict[str, dict | None]:
    """The methods a table of ours compares for a paper table: the ablation's, the experiment's, or every
    method of the main evaluation; with their config entries (None: an atlas method)."""
    experiments = plan.config["linus_experiments"]
    chosen = {"DB-ResUNet Table III": plan.ablation_methods["rate"], "DB-ResUNet Table IV": plan.ablation_methods["inputs"],
              "LiNUS Table VII": experiments["resolution"], "LiNUS Table VIII": experiments["targets"],
              "LiNUS Table IX": experiments["optimizers"]}.get(source, plan.evaluated_methods())
    return {method: ({**plan.models[method], "cohort": plan.method_cohort(method)} if method in plan.models else None)
            for method in chosen}


@pytest.mark.parametrize("source", TABLES)
def test_every_paper_row_has_a_method_beside_it(plan, source):
    reported = paper_results().query("source == @source")
    methods = methods_of(plan, source)
    for paper_method, condition in set(zip(reported["method"], reported["condition"])):
        beside = [method for method, model in methods.items()
                  if paper_method in paper_identity(method, model)[0] and condition in paper_identity(method, model)[1]]
        assert beside, f"{source}: no method of ours beside {paper_method} ({condition})"


def test_every_model_trains_on_its_papers_recipe(plan):
    """LiNUS's recipe (Dice + cross-entropy, cosine) for the STN and GPi models, V-Net and U-Net3D included;
    DB-ResUNet's (weighted cross-entropy, plateau) for the 7 nuclei."""
    assert len(plan.models) == 19
    for name, model in plan.models.items():
        settings = TrainConfig.from_dict(get_spec(model["architecture"]), {"task": model["task"], **model.get("training", {})})
        expected = ("dice_ce", "cosine") if model["task"] in ("stn", "gpi") else ("ce", "plateau")
        assert (settings.loss, settings.schedule) == expected, name


def test_enough_test_subjects_and_one_paper_rate(plan):
    """24 main and 16 high-resolution test subjects (95 % intervals about +-0.05 where a nucleus's Dice
    varies by 0.12 between subjects); the tables' reading of the DB-ResUNet rate is the model's."""
    assert len(plan.role_sessions("test")) == 24 and len(plan.role_sessions("test", "hires")) == 16
    assert TABLES_PAPER_RATE == PAPER_RATE[0]
