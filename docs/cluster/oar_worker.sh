#!/usr/bin/env bash
# One optuna-fractal worker as an OAR job; submit it as an array of best-effort jobs:
#
#   oarsub --array 8 -t besteffort -t idempotent -l gpu=1,walltime=4:00:00 ./oar_worker.sh
#
# Best-effort jobs use idle GPUs and are killed when another job needs them. With
# `-t idempotent`, OAR resubmits a job that ends in error or exits with status 99. This script
# exits with 99 when the worker was stopped by a signal, so a killed worker comes back and
# joins the study again. A worker that finds the budget met exits with 0 for good.
#
# Edit the settings below. The storage URL carries no password: libpq reads ~/.pgpass, which
# start_postgres.sh writes, and the home directory is shared by the nodes.
#
# NOTE: `-l gpu=1` is the Grid'5000 resource syntax; other OAR sites may name GPUs otherwise.
#OAR -n optuna-fractal
#OAR -O optuna-fractal.%jobid%.log
#OAR -E optuna-fractal.%jobid%.log
set -uo pipefail

STORAGE="${STORAGE:-postgresql+psycopg2://$USER@frontend.example:5433/optuna}"
STUDY="${STUDY:-lora-soo}"
SAMPLER="${SAMPLER:-soo}"
# The LLM objective's config (a YAML file or a bundled name), or OBJECTIVE=MODULE:CALLABLE.
CONFIG="${CONFIG:-cpu-tiny}"
OBJECTIVE="${OBJECTIVE:-}"
N_TRIALS="${N_TRIALS:-100}"
VENV="${VENV:-$HOME/optuna-fractal/.venv}"

# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ -n "$OBJECTIVE" ]; then
    objective_args=(--objective "$OBJECTIVE")
else
    objective_args=(--config "$CONFIG")
fi

# OAR numbers array jobs from 1. The index makes each worker's random seed distinct.
WORKER_INDEX="$(( ${OAR_ARRAY_INDEX:-1} - 1 ))"

# The worker runs in the background so that this shell can pass SIGTERM on to it: the worker
# then marks its running trial FAIL at once, and another worker re-runs that cell.
optuna-fractal run \
    --storage "$STORAGE" \
    --study-name "$STUDY" \
    --sampler "$SAMPLER" \
    "${objective_args[@]}" \
    --n-trials "$N_TRIALS" \
    --seed 0 --worker-index "$WORKER_INDEX" \
    --heartbeat-interval 60 --grace-period 300 \
    --no-progress-bar &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null' TERM INT
wait "$worker"
status=$?
if kill -0 "$worker" 2>/dev/null; then
    # `wait` returned because a signal arrived; wait again for the worker's own exit status.
    wait "$worker"
    status=$?
fi

if [ "$status" -eq 143 ]; then
    exit 99  # Stopped by a signal: let OAR resubmit this idempotent job.
fi
exit "$status"
