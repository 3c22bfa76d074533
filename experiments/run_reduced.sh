#!/usr/bin/env bash
# Reproduce everything under experiments/results/ at the reduced budget stated in
# experiments/results/README.md (about 30-40 minutes on 2 shared CPU cores).
#
#   experiments/run_reduced.sh                 # every stage, then tables and figures
#   experiments/run_reduced.sh toys tabular    # some stages only
#   RUNS=/tmp/runs experiments/run_reduced.sh  # where the run folders go (not committed)
#
# Stages: toys tabular bsds300 mnist image_nits nits report. Data: $NITSJAX_DATA must hold
# magic04/, htru2/, winequality-red/, winequality-white/, bsds300/ and mnist/
# (default /work/shared/data, the shared copies on the development machine).
# Each training stage is one `nitsjax train -m` sweep over experiment configs
# (configs/experiment/*.yaml) with the reduced-budget overrides written out below.
set -euo pipefail
cd "$(dirname "$0")/.."
export NITSJAX_DATA="${NITSJAX_DATA:-/work/shared/data}"
RUNS="${RUNS:-outputs/reduced}"
NJ="${NITSJAX:-.venv/bin/nitsjax}"
PY="${PYTHON:-.venv/bin/python}"
COMMON=(train.progress=false plots.enabled=false)
TOYS=moons,8gaussians,checkerboard,pinwheel,2spirals,rings,circles,swissroll
TABLES=(magic htru2 wine_red wine_white)

sweep() {  # sweep <folder> <overrides...>
  local dir="$RUNS/$1"; shift
  echo "+ $NJ train -m $* ${COMMON[*]} hydra.sweep.dir=$dir"
  "$NJ" train -m "$@" "${COMMON[@]}" "hydra.sweep.dir=$dir"
}

exps() {  # exps <model>: the experiment configs of the four UCI tables for one model
  local out=() t
  for t in "${TABLES[@]}"; do out+=("${t}_$1"); done
  (IFS=,; echo "${out[*]}")
}

stage_toys() {  # 8 toys x NSF coupling, 2,000 steps each
  sweep toys_nsf +experiment=toy_nsf "data=$TOYS" train.steps=2000
}

stage_tabular() {  # 4 UCI tables x MAF, RealNVP, NSF (C), NSF (AR); <= 1,500 steps each
  local m
  for m in maf realnvp nsf nsf_ar; do
    sweep "tabular_$m" "+experiment=$(exps "$m")" train.steps=1500
  done
}

stage_bsds300() {  # rebuilt BSDS300 patches (small preset), MAF (5) and NSF (AR), narrow
  sweep bsds300 +experiment=bsds300_images_maf,bsds300_images_nsf_ar \
    model.layers=5 'model.hidden=[128,128]' train.steps=2000 train.batch_size=256 \
    train.learning_rate=1e-3 train.eval_every=250 train.patience=null \
    train.schedule=cosine train.weight_decay=0.0
}

stage_mnist() {  # MNIST, MAF (5) / Real NVP (5) with one hidden layer of 256, 1,500 steps
  sweep mnist +experiment=mnist_maf,mnist_realnvp 'model.hidden=[256]' \
    train.steps=1500 train.batch_size=128 train.learning_rate=1e-3 train.eval_every=250 \
    train.patience=null train.schedule=cosine eval_batch_size=1000
}

stage_image_nits() {  # MNIST, image NITS (PixelCNN++ conditioner, 1 block of 32 filters per
  # resolution), discretised likelihood on the 8-bit values, 350 steps of batch 16;
  # validation 1% of the training images (600), the full test set; evaluated and
  # checkpointed every 50 steps, so an interrupted run resumes (SIGTERM ends a period)
  sweep image_nits +experiment=mnist_image_nits model.filters=32 model.resnets=1 \
    train.steps=350 train.batch_size=16 train.learning_rate=1e-3 train.eval_every=50 \
    train.patience=null train.ema_decay=null data.val_fraction=0.01 eval_batch_size=200
}

stage_nits() {  # NITS last: two toys and one UCI table, small conditioner
  sweep toys_nits +experiment=toy_nits data=moons,checkerboard train.steps=1000
  sweep tabular_nits +experiment=magic_nits train.steps=800
}

stage_report() {  # tables and figures from the run folders
  "$PY" experiments/results.py "$RUNS"/*/* --out experiments/results/results.md
  "$PY" experiments/figures.py "$RUNS" --out experiments/results  # image_nits: 16 samples
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(toys tabular bsds300 mnist image_nits nits report)
for s in "${stages[@]}"; do
  echo "=== stage $s ($(date +%T))"
  SECONDS=0
  "stage_$s"
  echo "=== stage $s done in ${SECONDS}s"
done
