#!/usr/bin/env bash
# Converged SASRec vs RecGPT on several data sets at once: the jobs run side by side (one torch thread
# each), which suits a GPU machine with many cores (each job is bound by kernel launches, not by the GPU).
#
# Per data set D and seed S:
#   D-sasrec-ce-sS    recgpt train --model sasrec --loss ce        (RecGPT's pre-training, see NOTE)
#   D-recgpt-sS       recgpt train --model recgpt --stages prompt --init D-sasrec-ce-sS
#   D-sasrec-bce-sS   recgpt train --model sasrec --loss bce       (only for the seeds in BCE_SEEDS)
# NOTE: without the user module (the default), RecGPT's pre-training is SASRec with full cross-entropy:
# the same model, loss, data order and seed (on the CPU its curve matched SASRec's to the digit), so the
# prompt stage starts from the SASRec run instead of training the same model twice.
#
#   D-recgpt-NAME-sS  the same prompt stage with one of OPTIONS' variants, all side by side (when OPTIONS is set)
#
# Environment: DATASETS (beauty,sports,toys,yelp), SEEDS (1), BCE_SEEDS (1), CAP_PRE, CAP_PROMPT and CAP_BCE
# (--max-minutes per stage; empty: none), DEVICE (auto), RUNS (runs/sweep), DEADLINE (seconds after which
# unfinished jobs are stopped, so that what finished can be collected; 0: none), RECGPT (the command),
# OPTIONS (prompt-stage variants from each SASRec, space-separated NAME=KEY=VALUE+KEY=VALUE, each pair a
# `--set`; `NAME=` alone: the code's defaults, which `recgpt train` takes per data set (DATA_PROMPT_DEFAULTS
# in model/stages.py: prompt weight 3 on Beauty); empty: one D-recgpt-sS run with the defaults).
# Then: recgpt eval RUNS/D-sasrec-ce-sS RUNS/D-recgpt-sS --block test_two_stage --baseline RUNS/D-sasrec-ce-sS
# (with OPTIONS: RUNS/D-recgpt-NAME-sS; or `recgpt eval --group ... --paired-baseline` for the seeds' mean ± std)
set -u
DATASETS=${DATASETS:-beauty,sports,toys,yelp}
SEEDS=${SEEDS-1}
BCE_SEEDS=${BCE_SEEDS-1}  # empty: no BCE runs
CAP_PRE=${CAP_PRE:-}
CAP_PROMPT=${CAP_PROMPT:-}
CAP_BCE=${CAP_BCE:-}
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/sweep}
DEADLINE=${DEADLINE:-0}
RECGPT=${RECGPT:-recgpt}
OPTIONS=${OPTIONS:-}
mkdir -p "$RUNS/logs"

cap() { [ -n "$1" ] && echo "--max-minutes $1"; }
train() {  # name, args...: one run, its log in RUNS/logs/name.log
  local name=$1; shift
  $RECGPT train --out "$RUNS/$name" --threads 1 --device "$DEVICE" "$@" >"$RUNS/logs/$name.log" 2>&1
  local rc=$?
  echo "$(date +%T) $name exit $rc" >>"$RUNS/logs/jobs.txt"
  return $rc  # a failed (or stopped) SASRec run must not start its prompt stage
}

prompt_stages() {  # data, seed: the prompt stage(s) from D-sasrec-ce-sS, side by side
  local d=$1 s=$2 o name sets kv
  local common=(--data "$d" --model recgpt --stages prompt --init "$RUNS/$d-sasrec-ce-s$s" --seed "$s")
  if [ -z "$OPTIONS" ]; then
    train "$d-recgpt-s$s" "${common[@]}" $(cap "$CAP_PROMPT")
    return
  fi
  for o in $OPTIONS; do
    name=${o%%=*}; sets=()
    for kv in $(tr + ' ' <<<"${o#*=}"); do sets+=(--set "$kv"); done
    train "$d-recgpt-$name-s$s" "${common[@]}" "${sets[@]}" $(cap "$CAP_PROMPT") &
  done
  wait
}

pids=()
for d in ${DATASETS//,/ }; do
  for s in ${SEEDS//,/ }; do
    ( train "$d-sasrec-ce-s$s" --data "$d" --model sasrec --loss ce --seed "$s" $(cap "$CAP_PRE") &&
      prompt_stages "$d" "$s" ) &
    pids+=($!)
  done
  for s in ${BCE_SEEDS//,/ }; do
    train "$d-sasrec-bce-s$s" --data "$d" --model sasrec --loss bce --seed "$s" \
      $(cap "$CAP_BCE") &
    pids+=($!)
  done
done
if [ "$DEADLINE" -gt 0 ]; then
  ( sleep "$DEADLINE"; echo "$(date +%T) deadline: stopping what still runs" >>"$RUNS/logs/jobs.txt"
    pkill -f "recgpt train --out $RUNS/" ; pkill -f "service.cli train --out $RUNS/" ) &
  watchdog=$!
fi
wait "${pids[@]}"
[ "$DEADLINE" -gt 0 ] && kill "$watchdog" 2>/dev/null
cat "$RUNS/logs/jobs.txt"
