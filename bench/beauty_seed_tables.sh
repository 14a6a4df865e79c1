#!/usr/bin/env bash
# The session-12 Beauty seed tables (docs/results/beauty_seeds_vs_sasrec.md, beauty_seeds_vs_souped_sasrec.md) and the
# session-14 control from the souped pre-training (beauty_souped_control_s14.md)
# from the committed run folders; run from the repository root. Trained by the commands in docs/results/README.md.
set -e
R=docs/results/runs
S="$R/beauty-s11-check4-sasrec,$R/beauty-s12-sasrec-ce-s2,$R/beauty-s12-sasrec-ce-s3"
G="$R/beauty-s11-check4-recgpt,$R/beauty-s12-recgpt-s2,$R/beauty-s12-recgpt-s3"
G2=$(echo "$G" | sed 's/,/:test_two_stage,/g'):test_two_stage
${RECGPT:-.venv/bin/recgpt} eval --group "sasrec (ce)=$S" --group "recgpt, one-stage=$G" --group "recgpt, two-stage=$G2" \
  --paired-baseline "sasrec (ce)" --out docs/results/beauty_seeds_vs_sasrec
${RECGPT:-.venv/bin/recgpt} eval --group "sasrec (ce) + pre-training soup=$R/beauty-s12-sasrec-soup-s1,$R/beauty-s12-sasrec-soup-s2,$R/beauty-s12-sasrec-soup-s3" \
  --group "sasrec (ce)=$S" \
  --group "recgpt two-stage (prompt stage from sasrec (ce))=$G2" \
  --group "recgpt two-stage (prompt stage from the souped sasrec)=$R/beauty-s12-recgpt-from-soup-s1:test_two_stage,$R/beauty-s12-recgpt-from-soup-s2:test_two_stage,$R/beauty-s12-recgpt-from-soup-s3:test_two_stage" \
  --paired-baseline "sasrec (ce) + pre-training soup" --out docs/results/beauty_seeds_vs_souped_sasrec
${RECGPT:-.venv/bin/recgpt} eval $R/beauty-s13-check4-sasrec:test $R/beauty-s14-control-s1:test \
  $R/beauty-s14-control-s1:test_two_stage $R/beauty-s13-check4-recgpt:test $R/beauty-s13-check4-recgpt:test_two_stage \
  $R/beauty-s12-recgpt-from-soup-s1:test $R/beauty-s12-recgpt-from-soup-s1:test_two_stage \
  --baseline $R/beauty-s13-check4-sasrec --out docs/results/beauty_souped_control_s14
# session 15: the check's pair on the deterministic code, and prompt-tuning with mix_start=true (it kept a = 1)
${RECGPT:-.venv/bin/recgpt} eval $R/beauty-s15-sasrec-ce-s1:test $R/beauty-s15-recgpt-mix-s1:test \
  $R/beauty-s15-recgpt-mix-s1:test_two_stage --baseline $R/beauty-s15-sasrec-ce-s1 --out docs/results/beauty_s15
