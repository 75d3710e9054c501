#!/bin/bash
# Extract a data set's features on a Slurm array, then check the merged store in a job that runs only when
# every array task succeeded.
#
#   scripts/slurm/submit_extract.sh rgb 32 [params.yaml] [extra sbatch options...]
#   scripts/slurm/submit_extract.sh flow 32 params.yaml --partition=gpu --time=04:00:00
#
# Run it from the repository root after `dvc repro prepare` (the array reads cache/prepare/index.json).
# Prints the two job ids. GRIZAL_PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail

KIND=${1:?usage: submit_extract.sh rgb|flow TASKS [params.yaml] [sbatch options...]}
TASKS=${2:?usage: submit_extract.sh rgb|flow TASKS [params.yaml] [sbatch options...]}
PARAMS=${3:-params.yaml}
shift $(( $# < 3 ? $# : 3 ))
PYTHON=${GRIZAL_PYTHON:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)

# The store and the index the stage uses, read from the params file the tasks will read.
read -r STORE INDEX FRACTION < <("${PYTHON}" - "${KIND}" "${PARAMS}" <<'PY'
import sys
from pipeline.common import load_params
from pipeline.features.settings import extract_config
cfg = extract_config(load_params(sys.argv[2]), sys.argv[2])
print(cfg["out"][sys.argv[1]], cfg["index"], cfg["max_failure_fraction"])
PY
)
mkdir -p logs
ARRAY=$(sbatch --parsable --array="0-$((TASKS - 1))" "$@" "${HERE}/extract_array.sbatch" "${KIND}" "${PARAMS}")
ARRAY=${ARRAY%%;*}  # --parsable prints "id;cluster" on multi-cluster sites
CHECK=$(sbatch --parsable --dependency="afterok:${ARRAY}" "$@" "${HERE}/check.sbatch" "${STORE}" "${INDEX}" "${FRACTION}")
echo "array ${ARRAY} (${TASKS} tasks, ${KIND} -> ${STORE}); check ${CHECK%%;*} after it"
