# deepnuclei: segmentation of the deep brain nuclei from QSM and T1 MRI, and the two papers'
# tables and figures. Thin on purpose: the stages live in workflow/rules/, the science in
# src/deepnuclei/. Default config: the simulated demo cohort (config/config.yaml).

import os

from snakemake.utils import min_version, validate

min_version("9.0")


# the defaults travel with the Snakefile, so `--directory` or `-s` runs from elsewhere find them
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"  # the report's front page: the run's data and its fine-tuned models


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/qsm.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/registration.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/measures.smk"
include: "workflow/rules/derivatives.smk"
include: "workflow/rules/experiments.smk"


rule all:
    input:
        all_targets(),
    default_target: True


rule reproduce:
    """Target: every table and figure of both papers, the default run's and the LiNUS experiments'. With
    config/reproduce.yaml (make reproduce) every method of the papers' tables is trained for them."""
    input:
        rules.all.input,
        rules.linus_experiments.input,
