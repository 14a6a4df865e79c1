#!/usr/bin/env bash
# The session-12 Beauty seed tables (docs/results/beauty_seeds_vs_sasrec.md, beauty_seeds_vs_souped_sasrec.md) and the
# session-14 control from the souped pre-training (beauty_souped_control_s14.md), session 15's pair (beauty_s15.md) and
# session 16's prompt-stage options (beauty_prompt_options_s16.md, beauty_prompt_weight_s16.md), session 17's converged
# options (beauty_prompt_options_converged.md and .png) and the check's pair on three seeds (beauty_check_pair_3seeds_s17.md)
# from the committed run folders; run from the repository root. Trained by the commands in docs/results/history.md.
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
# session 16: prompt-stage options from the check's SASRec (seed 1; k=1 "last" is session 15's run, whose SASRec
# start repeats session 16's to the digit), with the validation figure each run was chosen on
${RECGPT:-.venv/bin/recgpt} eval $R/beauty-s16-sasrec-ce-s1:test $R/beauty-s15-recgpt-mix-s1:test_two_stage \
  $R/beauty-s16-recgpt-replace-s1:test_two_stage $R/beauty-s16-recgpt-all-s1:test_two_stage \
  $R/beauty-s16-recgpt-k2-s1:test_two_stage $R/beauty-s16-recgpt-w3-s1:test_two_stage \
  $R/beauty-s16-recgpt-freeze-emb-s1:test_two_stage $R/beauty-s16-recgpt-ssm-s1:test_two_stage \
  --baseline $R/beauty-s16-sasrec-ce-s1 --selection --out docs/results/beauty_prompt_options_s16
# session 16: prompt_weight=3 against the default (1) on seeds 1 and 2, paired with each seed's souped SASRec
${RECGPT:-.venv/bin/recgpt} eval --group "sasrec (ce)=$R/beauty-s16-sasrec-ce-s1,$R/beauty-s16-sasrec-ce-s2" \
  --group "recgpt two-stage, prompt_weight=1 (default)=$R/beauty-s15-recgpt-mix-s1:test_two_stage,$R/beauty-s16-recgpt-k1-s2:test_two_stage" \
  --group "recgpt two-stage, prompt_weight=3=$R/beauty-s16-recgpt-w3-s1:test_two_stage,$R/beauty-s16-recgpt-w3-s2:test_two_stage" \
  --group "recgpt one-stage, prompt_weight=1 (default)=$R/beauty-s15-recgpt-mix-s1,$R/beauty-s16-recgpt-k1-s2" \
  --group "recgpt one-stage, prompt_weight=3=$R/beauty-s16-recgpt-w3-s1,$R/beauty-s16-recgpt-w3-s2" \
  --paired-baseline "sasrec (ce)" --out docs/results/beauty_prompt_weight_s16
# session 17: every converged prompt-stage option from the check's SASRec (seed 1; its session-17 run repeats
# session 16's validation and test NDCG@10 to the digit), sessions 15-17 in one table, with the validation each run
# was chosen on and the plot of test against it
S17=$R/beauty-s17
${RECGPT:-.venv/bin/recgpt} eval $S17-sasrec-ce-s1:test $S17-recgpt-k1-s1:test_two_stage \
  $R/beauty-s15-recgpt-mix-s1:test_two_stage $R/beauty-s16-recgpt-k2-s1:test_two_stage $S17-recgpt-k3-s1:test_two_stage \
  $R/beauty-s16-recgpt-replace-s1:test_two_stage $R/beauty-s16-recgpt-all-s1:test_two_stage \
  $R/beauty-s16-recgpt-freeze-emb-s1:test_two_stage $S17-recgpt-freeze-last-s1:test_two_stage \
  $R/beauty-s16-recgpt-ssm-s1:test_two_stage $S17-recgpt-bce-s1:test_two_stage \
  $R/beauty-s16-recgpt-w3-s1:test_two_stage $S17-recgpt-lr1e-3-s1:test_two_stage \
  --baseline $S17-sasrec-ce-s1 --plot --out docs/results/beauty_prompt_options_converged
# session 17: the check's pair (SASRec, then the default prompt stage from it) on seeds 1, 2, 3 of the current code
${RECGPT:-.venv/bin/recgpt} eval --group "sasrec (ce)=$S17-sasrec-ce-s1,$R/beauty-s16-sasrec-ce-s2,$S17-sasrec-ce-s3" \
  --group "recgpt one-stage=$S17-recgpt-k1-s1,$R/beauty-s16-recgpt-k1-s2,$S17-recgpt-k1-s3" \
  --group "recgpt two-stage=$S17-recgpt-k1-s1:test_two_stage,$R/beauty-s16-recgpt-k1-s2:test_two_stage,$S17-recgpt-k1-s3:test_two_stage" \
  --paired-baseline "sasrec (ce)" --out docs/results/beauty_check_pair_3seeds_s17
