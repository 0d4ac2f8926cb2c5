#!/usr/bin/env bash
# Eight optuna-fractal workers as a SLURM job array:
#
#   sbatch slurm_array.sh
#
# Each array task is one worker on one GPU. SLURM sends SIGTERM at the time limit (and on
# preemption), then SIGKILL after the KillWait delay of slurm.conf. On SIGTERM the worker marks
# its running trial FAIL, so that another worker re-runs the cell at once. Submit the script
# again (or more tasks) to continue the study: workers that find the budget met exit at once.
#
# --requeue lets SLURM put a preempted task back in the queue, where it rejoins the study.
# Edit the #SBATCH lines for your site (partition, account, GPU request) and the settings.
#SBATCH --job-name=optuna-fractal
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --output=optuna-fractal.%A_%a.log
#SBATCH --requeue
set -uo pipefail

STORAGE="${STORAGE:-postgresql+psycopg2://$USER@login.example:5433/optuna}"
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
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"

# srun delivers the job's signals to the worker process directly.
exec srun optuna-fractal run \
    --storage "$STORAGE" \
    --study-name "$STUDY" \
    --sampler "$SAMPLER" \
    "${objective_args[@]}" \
    --n-trials "$N_TRIALS" \
    --seed 0 --worker-index "${SLURM_ARRAY_TASK_ID:-0}" \
    --heartbeat-interval 60 --grace-period 300 \
    --no-progress-bar
