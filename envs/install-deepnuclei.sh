#!/bin/sh
# Post-deploy script of every environment here (each <env>.post-deploy.sh links to it; Snakemake runs it
# inside the new environment). --no-deps: pyproject.toml lists what every stage needs together, while
# each environment holds only its own stage's packages.
set -eu
python -m pip install --no-deps --editable "$(dirname "$0")/.."
