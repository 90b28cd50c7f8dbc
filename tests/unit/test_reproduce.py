"""The plans of config/reproduce.yaml (the `reproduce` target, on the simulated demo cohorts) and of
config/paper.yaml (a reviewer's run on data shaped like the papers'): a method of ours beside every row of
every table of both papers, each model on its paper's recipe, and in paper.yaml in the space its paper
read; the tiny end-to-end run (tests/workflow/test_reproduce_run.py) checks the tables it writes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from deepnuclei.labels import dseg_tsv
from deepnuclei.models import get_spec
from deepnuclei.models.dbresunet import PAPER_RATE
from deepnuclei.plan import make_plan, model_space
from deepnuclei.tables import PAPER_NAMES, PAPER_RATE as TABLES_PAPER_RATE, paper_identity, paper_results
from deepnuclei.train import TrainConfig
from helpers import ROOT
from helpers.datasets import write_session
from helpers.runs import merged

TABLES = ("DB-ResUNet Table I", "DB-ResUNet Table II", "DB-ResUNet Table III", "DB-ResUNet Table IV",
          "LiNUS Table II", "LiNUS Table III", "LiNUS Table VII", "LiNUS Table VIII", "LiNUS Table IX")
CONFIGS = ("reproduce", "paper")
PAPER_NAMES_BACK = {paper: ours for ours, paper in PAPER_NAMES.items()}  # "UNet3d" -> unet3d_linus


def shipped_config(name: str) -> dict:
    return merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                  yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))


def papers_dataset(bids: Path) -> Path:
    """Empty files named as the papers' data would be: 43 participants with a T1 and three SWI echoes,
    labelled on the SWI grid (the DB-ResUNet cohort; the main cohort's T1 stands for LiNUS's TT14), and 8
    high-resolution participants with a T1 only, labelled on it (PD25-like: the `hires` cohort's prefix)."""
    for number in range(1, 44):
        write_session(bids, f"{number:02d}", labels=("SWI",))
    for number in range(1, 9):
        write_session(bids, f"hr{number:02d}", echoes=0, labels=("T1w",))
    (bids / "derivatives" / "labels" / "dseg.tsv").write_text(dseg_tsv())
    (bids / "participants.tsv").write_text("participant_id\tage\tsex\n" + "".join(
        f"sub-{label}\t{50 + index % 20}\t{'MF'[index % 2]}\n"
        for index, label in enumerate([f"{n:02d}" for n in range(1, 44)] + [f"hr{n:02d}" for n in range(1, 9)])))
    return bids


@pytest.fixture(scope="module")
def reproduce_plan(tmp_path_factory):
    return make_plan({**shipped_config("reproduce"), "results_dir": str(tmp_path_factory.mktemp("results"))})


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    config = {**shipped_config("paper"), "bids_dir": str(papers_dataset(tmp_path_factory.mktemp("bids")))}
    return make_plan({**config, "results_dir": str(tmp_path_factory.mktemp("results"))})


@pytest.fixture(params=CONFIGS, ids=[f"{name}.yaml" for name in CONFIGS])  # not "reproduce": the opt-in marker's name
def plan(request):
    return request.getfixturevalue(f"{request.param}_plan")


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
    for paper_method, condition, beside in rows_and_methods_beside(plan, source):
        assert beside, f"{source}: no method of ours beside {paper_method} ({condition})"


def rows_and_methods_beside(plan, source: str) -> list[tuple[str, str, dict[str, dict | None]]]:
    """Each row (paper method, condition) of a paper table with the methods of ours beside it."""
    reported = paper_results().query("source == @source")
    methods = methods_of(plan, source)
    return [(paper_method, condition, {method: model for method, model in methods.items()
                                       if paper_method in paper_identity(method, model)[0]
                                       and condition in paper_identity(method, model)[1]})
            for paper_method, condition in sorted(set(zip(reported["method"], reported["condition"])))]


def test_every_model_trains_on_its_papers_recipe(plan):
    """LiNUS's recipe (Dice + cross-entropy, cosine) for the STN and GPi models, V-Net and U-Net3D included;
    DB-ResUNet's (weighted cross-entropy, plateau) for the 7 nuclei. reproduce.yaml: 19 models (linus-t1
    beside the demo's QSM LiNUS); paper.yaml: 18 (its `linus` is the paper's, on the T1)."""
    assert len(plan.models) == (19 if plan.config["demo"]["enabled"] else 18)
    for name, model in plan.models.items():
        settings = TrainConfig.from_dict(get_spec(model["architecture"]), {"task": model["task"], **model.get("training", {})})
        expected = ("dice_ce", "cosine") if model["task"] in ("stn", "gpi") else ("ce", "plateau")
        assert (settings.loss, settings.schedule) == expected, name


def test_enough_test_subjects_and_one_paper_rate(reproduce_plan):
    """24 main and 16 high-resolution test subjects (95 % intervals about +-0.05 where a nucleus's Dice
    varies by 0.12 between subjects); the tables' reading of the DB-ResUNet rate is the model's."""
    plan = reproduce_plan
    assert len(plan.role_sessions("test")) == 24 and len(plan.role_sessions("test", "hires")) == 16
    assert TABLES_PAPER_RATE == PAPER_RATE[0]


LINUS_2D = {"max_epochs": 200, "batch_size": 128, "iterations_per_epoch": None, "patch_size": None, "loss": "dice_ce",
            "schedule": "cosine", "lr": 1e-3, "min_lr": 1e-4, "optimizer": "adam"}
DB_RESUNET = {"batch_size": 4, "iterations_per_epoch": None, "loss": "ce", "class_weights": (0.1, 0.4),
              "aux_weight": 1.0, "lr": 3e-4, "betas": (0.9, 0.99), "weight_decay": 3e-5, "schedule": "plateau",
              "plateau_patience": 10, "stop_lr": 1e-6, "foreground_fraction": 0.5}


def settings_of(model: dict) -> TrainConfig:
    return TrainConfig.from_dict(get_spec(model["architecture"]), {"task": model["task"], **model.get("training", {})})


def test_paper_plan_splits_as_the_paper(paper_plan):
    """DB-ResUNet's 20 / 4 / 19 of its 43 subjects; the PD25-like cohort by the demo's hires splits."""
    assert [len(paper_plan.role_sessions(role)) for role in ("train", "validation", "test")] == [20, 4, 19]
    assert paper_plan.role_sessions("test", "hires") == ["hr07", "hr08"]
    assert not paper_plan.notes


@pytest.mark.parametrize("source", [source for source in TABLES if source.startswith("LiNUS")])
def test_paper_plan_runs_every_linus_row_on_the_t1_with_one_recipe(paper_plan, source):
    """LiNUS's tables as its paper ran them: every model on the T1 on its own grid, on LiNUS's recipe with one
    learning-rate rule (1e-3 cosine to 1e-4) for all; 3D baselines on batches of 4 patches; MI-ST only in the
    optimizer row. TT14 rows on the main cohort, PD25 rows on the T1-only `hires` one."""
    for paper_method, condition, beside in rows_and_methods_beside(paper_plan, source):
        models = {method: model for method, model in beside.items() if model is not None}
        assert models or paper_method == "Traditional method", (source, paper_method)
        for method, model in models.items():
            assert (model_space(model), model["inputs"]) == ("T1w", ["T1w"]), method
            settings = settings_of(model)
            expected = {**LINUS_2D, "batch_size": 128 if get_spec(model["architecture"]).dims == 2 else 4,
                        "optimizer": "mist" if condition == "optimizer MI-ST" else "adam"}
            assert {key: getattr(settings, key) for key in expected} == expected, method
            tt14 = source in ("LiNUS Table II", "LiNUS Table III") or condition == "TT14"
            assert model["cohort"] == ("main" if tt14 else "hires"), method


@pytest.mark.parametrize("source", [source for source in TABLES if source.startswith("DB-ResUNet")])
def test_paper_plan_runs_every_db_resunet_row_on_the_swi_grid_with_its_recipe(paper_plan, source):
    """DB-ResUNet's tables: QSM and T1 on the SWI grid, its recipe (weighted cross-entropy, Adam 3e-4, x sqrt(0.1)
    on a plateau of 10 validations, stop below 1e-6); the ablations change only the rate or the inputs."""
    for paper_method, condition, beside in rows_and_methods_beside(paper_plan, source):
        for method, model in beside.items():
            if model is None:
                continue
            assert model_space(model) == "SWI" and model.get("cohort", "main") == "main", method
            settings = settings_of(model)
            assert {key: getattr(settings, key) for key in DB_RESUNET} == DB_RESUNET, method
            assert settings.plateau_factor == pytest.approx(math.sqrt(0.1)), method
            if condition:  # the inputs a row names (Table IV), else QSM + T1 as the rate rows and Table I
                named = condition.removeprefix("input ") if condition.startswith("input ") else "QSM+T1 WI"
                inputs = {"QSM": "Chimap", "T1 WI": "T1w"}
                assert sorted(model["inputs"]) == sorted(inputs[name] for name in named.split("+")), method


def test_paper_plan_reads_each_cohort_on_its_own_grid(paper_plan):
    """PD25's 0.3 mm T1 keeps a matrix of its own; Table VI reads each cohort's model input: the T1 grid."""
    assert paper_plan.preprocess_settings("T1w", "hires").matrix == [368, 336, 336]
    assert paper_plan.preprocess_settings("T1w").matrix == [192, 224, 192]
    cohorts = paper_plan.experiment_cohorts()
    assert sorted(cohorts) == ["hires", "main"]
    assert all("space-T1w" in cohort.model_input and cohort.model_input.endswith("T1w.nii.gz")
               for cohort in cohorts.values())


def test_table_i_reads_each_cohorts_participants(paper_plan, reproduce_plan):
    """LiNUS Table I's form: the dataset's participants.tsv and the participants of each cohort."""
    participants = paper_plan.evaluation_plan().participants
    assert participants.tsv == str(Path(paper_plan.config["bids_dir"]) / "participants.tsv")
    assert participants.cohorts == {"main": [f"{n:02d}" for n in range(1, 44)], "hires": [f"hr{n:02d}" for n in range(1, 9)]}
    assert reproduce_plan.evaluation_plan().participants.tsv.endswith("resources/demo/bids/participants.tsv")


def test_paper_plan_with_a_tt14_cohort_of_its_own(tmp_path):
    """The assumptions table's switch: LiNUS Table II's models on a T1-only cohort named `tt14` (as the paper's
    14 patients) instead of the main cohort's T1; each row still has its model, Table VII's TT14 row included."""
    config = shipped_config("paper")
    bids = papers_dataset(tmp_path / "bids")
    for number in range(1, 15):
        write_session(bids, f"tt{number:02d}", echoes=0, labels=("T1w",))
    config = merged(config, {"bids_dir": str(bids), "results_dir": str(tmp_path / "results"), "cohorts": {
        "tt14": {"prefix": "tt", "n_subjects": 14, "splits": {"train": 8, "validation": 2, "test": 4}}}})
    table_ii = ("linus", "unet2d", "fcn", "deeplabv3", "lraspp", "vnet", "unet3d_linus")
    for name in table_ii:
        config["models"][name]["cohort"] = "tt14"
    plan = make_plan(config)
    assert plan.scored("vnet") == ["tt11", "tt12", "tt13", "tt14"]
    for source in ("LiNUS Table II", "LiNUS Table VII"):
        for paper_method, condition, beside in rows_and_methods_beside(plan, source):
            if paper_method != "Traditional method":
                ours = {"PD25": ["linus-hr"], "TT14": ["linus"]}.get(condition, [PAPER_NAMES_BACK[paper_method]])
                assert sorted(beside) == ours, (source, paper_method, condition)
