#!/usr/bin/env bash
# A campaign through a real Slurm: start a private single-node cluster (scripts/slurm/local-cluster),
# simulate a small survey whose detectors fall in several sky tracts, build calibrations, process it
# once with plain `mpirun drp campaign` (the reference) and once with scripts/slurm/submit-campaign
# (a job array of shards plus a dependent global job, srun --mpi=pmix), each first with a master flat
# hidden (a shard and the global job fail), then again after restoring it (the jobs resume and
# COMPLETE); then Slurm once more (nothing left to do). Checks the job states, that the shares ran every
# quantum exactly once, and that both repositories hold the same datasets with the same checksums.
# Skips (exit 0, "SKIPPED: ...") when not root, when slurm-wlm/munge are missing, or when the
# private cluster cannot be started. Set DRP_TEST_KEEP=1 to keep the temporary directory.
set -u
drp="$1"
here="$(cd "$(dirname "$0")" && pwd)"
slurm_dir="$(cd "$here/../../scripts/slurm" && pwd)"
skip() { echo "SKIPPED: $*"; exit 0; }
fail=0
bad() { echo "FAIL $*"; fail=1; }
t0=$SECONDS
step() { echo "---- [$((SECONDS - t0)) s] $*"; }

# submit-campaign --coadd --print-only (no Slurm needed): a second array with --pipeline coadd that waits
# for the global job, the campaign arguments passed on.
pr="$(mktemp -d)"
out="$("$slurm_dir/submit-campaign" --repo "$pr" --shards 2 --coadd --print-only --drp "$drp" -- --set skymap.num_rings=60 2>&1)" \
  || bad "submit-campaign --coadd --print-only: exit $?"$'\n'"$out"
grep -q "^# coadd stage environment: EXTRA_ARGS=--set skymap.num_rings=60 --pipeline coadd$" <<<"$out" || bad "coadd stage arguments"$'\n'"$out"
grep -q "job-name=drp-campaign-processed-coadd.*dependency=afterany\|dependency=afterany.*job-name=drp-campaign-processed-coadd" <<<"$out" \
  || bad "coadd stage sbatch line"$'\n'"$out"
rmdir "$pr"

[ "$(id -u)" -eq 0 ] || skip "test_slurm_campaign needs root for a private Slurm (slurmd runs jobs as their user)"
export PATH="$PATH:/usr/sbin"
for b in slurmctld slurmd sbatch srun squeue scontrol sinfo munged munge unmunge; do
  command -v "$b" >/dev/null || skip "$b not found (apt-get install slurm-wlm munge)"
done
command -v mpirun >/dev/null || skip "mpirun not found"

tmp="$(mktemp -d)"
cluster="$tmp/cluster"
cleanup() {
  "$slurm_dir/local-cluster" stop "$cluster" >/dev/null 2>&1
  if [ "${DRP_TEST_KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

step "starting a private Slurm in $cluster"
if ! out="$("$slurm_dir/local-cluster" start "$cluster" 2>&1)"; then
  echo "$out" | tail -20
  skip "the private Slurm cluster could not be started"
fi
export SLURM_CONF="$cluster/slurm.conf"
srun --mpi=list 2>&1 | grep -qw pmix || skip "this Slurm has no pmix MPI plugin"

# --- A small survey: 2x2 detectors, 2 bands x 2 visits, pointed (with small dithers) at the corner
# where two tracts of one declination ring of the default sky map (120 rings) meet the ring above
# (RA 55.45, dec -29.75), so that the detector centres fall in 3 tracts and the shards have work to
# share. (Smaller tracts through skymap.num_rings would do too, but the sky map builds every tract:
# thousands of rings cost minutes.) The campaign arguments pass through submit-campaign to every job;
# a processing option is among them so that a lost argument shows in the outputs' provenance.
repo="$tmp/ref"
sim_args=(--preset demo --set camera.detectors_x=2 --set camera.detectors_y=2 --set observing.bands=r,i
  --set observing.visits_per_band=2 --set sky.star_density_per_deg2=25000 --set sky.radius_deg=0.3
  --set sky.center_ra_deg=55.45 --set sky.center_dec_deg=-29.75 --set observing.field_ra_deg=55.45
  --set observing.field_dec_deg=-29.75 --set observing.dither_radius_deg=0.03)
campaign_args=(--set skymap.num_rings=120 --set detection.threshold_sigma=5.5)
mpi=(mpirun -np 2 --oversubscribe)

step "simulating"
out="$("${mpi[@]}" "$drp" sim --repo "$repo" "${sim_args[@]}" 2>&1)"; rc=$?
[ "$rc" -eq 0 ] || { echo "$out" | tail -20; bad "sim: exit $rc"; exit 1; }
step "building calibrations"
out="$("${mpi[@]}" "$drp" build-calibs --repo "$repo" 2>&1)"; rc=$?
[ "$rc" -eq 0 ] || { echo "$out" | tail -20; bad "build-calibs: exit $rc"; exit 1; }
# The Slurm campaign runs in a byte-identical copy, so that the output run has the same name in both
# (provenance records input runs, so a different output run name would change global outputs).
cp -a "$repo" "$tmp/slurm"

step "the plan and its 3 shares (dry run)"
out="$("$drp" campaign --repo "$repo" --dry-run --array-index 0 --array-count 3 "${campaign_args[@]}" 2>&1)"; rc=$?
echo "$out" | grep -v ' INFO \| DEBUG ' | tail -12
[ "$rc" -eq 0 ] || bad "campaign --dry-run --array-count 3: exit $rc"
n_tracts="$(sed -n 's/.* quanta over \([0-9]*\) tract(s).*/\1/p' <<<"$out")"
[ "${n_tracts:-0}" -ge 2 ] || bad "the survey falls in ${n_tracts:-no} tract(s); the test wants several"

# The reference goes through the same history as the Slurm passes below: a master flat hidden (detector 3 of band i
# fails; its visits' PSFs are fitted from the other detectors, as measureVisitPsf tolerates a failed characterisation),
# then restored and resumed (detector 3 is processed, with a PSF of its own: its visits' PSFs are done).
step "reference: mpirun -np 2 drp campaign, a master flat hidden, then restored and resumed"
ref_flat="$(find "$repo/calib" -name 'flat_i_3.fits' | head -1)"
[ -n "$ref_flat" ] || { bad "no master flat flat_i_3.fits in the reference's calibration run"; exit 1; }
mv "$ref_flat" "$tmp/hidden-ref-flat.fits"
ref_start=$SECONDS
ref_out1="$("${mpi[@]}" "$drp" campaign --repo "$repo" "${campaign_args[@]}" 2>&1)"; rc=$?
echo "$ref_out1" | grep -v ' INFO \| DEBUG ' | tail -8
[ "$rc" -eq 1 ] || bad "reference campaign with a flat hidden: exit $rc (wanted 1)"
mv "$tmp/hidden-ref-flat.fits" "$ref_flat"
ref_out="$("${mpi[@]}" "$drp" campaign --repo "$repo" "${campaign_args[@]}" --resume 2>&1)"; rc=$?
echo "$ref_out" | grep -v ' INFO \| DEBUG ' | tail -8
[ "$rc" -eq 0 ] || bad "reference campaign resumed: exit $rc"
ref_time=$((SECONDS - ref_start))

# --- The same campaign through Slurm: 3 shards of 1 rank (two run at once on 2 cores) and a global
# job of 2 ranks. Three submissions of the same command: the first with one master flat hidden (the
# shard holding its detector fails, and so does the global job, which runs anyway: afterany), the
# second after restoring it (resumes: runs only what failed), the third with everything done.
# job_states ID: one "id state reason" line per job (array tasks each on their own line).
job_states() {
  scontrol show job -o "$1" 2>/dev/null | while read -r line; do
    local id task state reason
    id="$(grep -o 'JobId=[0-9]*' <<<"$line" | head -1)"
    task="$(grep -o 'ArrayTaskId=[^ ]*' <<<"$line")"
    state="$(grep -o 'JobState=[A-Z_]*' <<<"$line")"
    reason="$(grep -o 'Reason=[^ ]*' <<<"$line")"
    echo "${id#JobId=}${task:+ task ${task#ArrayTaskId=}} ${state#JobState=} ${reason#Reason=}"
  done
}
final_state() { case "$1" in PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SUSPENDED|STAGE_OUT|SIGNALING) return 1 ;; *) return 0 ;; esac; }

# submit_and_wait LOGDIR TIMEOUT: submit, wait for both jobs; sets array_job, global_job, states
# ("id [task N] STATE reason" lines) and elapsed. Returns 1 if the submission or the wait failed.
submit_and_wait() {
  local logdir="$1" timeout="$2" out st rs a b c d deadline done_all start=$SECONDS
  array_job="" global_job="" states=""
  if ! out="$("$slurm_dir/submit-campaign" --repo "$tmp/slurm" --shards 3 --ranks-per-shard 1 --global-ranks 2 \
      --drp "$drp" --log-dir "$logdir" --time 00:10:00 --global-time 00:10:00 -- "${campaign_args[@]}" 2>&1)"; then
    echo "$out"; bad "submit-campaign: exit status not 0"; return 1
  fi
  [ -n "${verbose_submit:-}" ] && echo "$out"
  array_job="$(sed -n 's/^array_job=//p' <<<"$out")"
  global_job="$(sed -n 's/^global_job=//p' <<<"$out")"
  [ -n "$array_job" ] && [ -n "$global_job" ] || { echo "$out"; bad "submit-campaign printed no job ids"; return 1; }
  echo "jobs: array $array_job, global $global_job"
  deadline=$((SECONDS + timeout))
  while :; do
    states="$(job_states "$array_job"; job_states "$global_job")"
    done_all=1
    while read -r _ a b c d; do
      if [ "$a" = task ]; then st="$c"; rs="$d"; else st="$a"; rs="$b"; fi
      [ -n "$st" ] || continue
      final_state "$st" || done_all=0
      [ "$rs" = DependencyNeverSatisfied ] && { bad "global job: dependency never satisfied"; done_all=1; }
    done <<<"$states"
    [ -n "$states" ] && [ "$done_all" -eq 1 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      bad "jobs not finished after $timeout s"; echo "$states"; squeue -t all
      scancel "$array_job" "$global_job" 2>/dev/null
      return 1
    fi
    sleep 1
  done
  elapsed=$((SECONDS - start))
  echo "$states" | sed 's/^/  /'
}
# count_state STATE: how many of the jobs in $states ended in STATE.
count_state() { grep -c " $1 " <<<"$states"; }
quanta_run() { sed -n 's/^campaign: [0-9]* quanta: \([0-9]*\) run,.*/\1/p' "$@" | awk '{ s += $1 } END { print s + 0 }'; }
show_logs() {
  local f
  for f in "$1"/*.log; do
    [ -f "$f" ] || continue
    echo "== $(basename "$f")"
    grep -v ' INFO \| DEBUG \| VERBOSE ' "$f" | tail -12
  done
}

step "Slurm, pass 1: submit-campaign with 3 shards, one master flat hidden"
flat="$(find "$tmp/slurm/calib" -name 'flat_i_3.fits' | head -1)"
[ -n "$flat" ] || { bad "no master flat flat_i_3.fits in the calibration run"; exit 1; }
mv "$flat" "$tmp/hidden-flat.fits"
verbose_submit=1 submit_and_wait "$tmp/logs1" 240
mv "$tmp/hidden-flat.fits" "$flat"
show_logs "$tmp/logs1"
[ "$(count_state FAILED)" -ge 2 ] && [ "$(count_state COMPLETED)" -ge 1 ] \
  || bad "pass 1: wanted the shard(s) with detector 3 and the global job FAILED, the other shards COMPLETED"
grep -q "^$global_job FAILED " <<<"$states" || bad "pass 1: the global job did not run and fail"
grep -hq 'FAILED .*detector=3' "$tmp/logs1"/*.log || bad "pass 1: no log names the failed detector-visits of detector 3"
run1="$(cat "$tmp/logs1"/*.log | quanta_run)"

step "Slurm, pass 2: the same command again resumes"
submit_and_wait "$tmp/logs2" 240
slurm_time="$elapsed"
show_logs "$tmp/logs2"
[ "$(count_state COMPLETED)" -eq 4 ] || bad "pass 2: wanted 4 COMPLETED jobs (3 shards + global), got $(count_state COMPLETED)"
for i in 0 1 2; do
  log="$(ls "$tmp/logs2"/*-"${array_job}_$i".log 2>/dev/null | head -1)"
  [ -n "$log" ] || { bad "pass 2: no log for shard $i"; continue; }
  grep -q 'campaign-array: exit 0' "$log" || bad "pass 2: shard $i did not exit 0"
done
run2="$(cat "$tmp/logs2"/*.log | quanta_run)"

# The shares cover the campaign exactly once, across the failure and the resume: the quanta run by
# the jobs of both passes add up to those of the reference's two ("campaign: N quanta: R run, ...").
ref_run="$(printf '%s\n%s\n' "$ref_out1" "$ref_out" | quanta_run)"
echo "quanta run: reference $ref_run; Slurm pass 1 $run1 + pass 2 $run2"
[ "$ref_run" -gt 0 ] && [ "$run2" -gt 0 ] && [ "$ref_run" -eq $((run1 + run2)) ] \
  || bad "quanta run by the Slurm jobs ($run1 + $run2) differ from the reference ($ref_run)"

step "comparing the outputs (drp datasets --checksums)"
for r in ref slurm; do
  "$drp" datasets --repo "$tmp/$r" --collection processed --checksums >"$tmp/$r.txt" 2>"$tmp/$r.err" \
    || { cat "$tmp/$r.err"; bad "drp datasets --checksums of $r failed"; }
done
n_ref="$(grep -c $'\t' "$tmp/ref.txt")"
n_slurm="$(grep -c $'\t' "$tmp/slurm.txt")"
echo "reference: $n_ref datasets; Slurm: $n_slurm datasets"
echo "dataset types: $(cut -f1 "$tmp/ref.txt" | grep -v '^$' | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')"
[ "$n_ref" -gt 0 ] || bad "the reference run has no datasets"
if ! diff <(grep $'\t' "$tmp/ref.txt" | cut -f1,2) <(grep $'\t' "$tmp/slurm.txt" | cut -f1,2) >"$tmp/diff-ids.txt"; then
  bad "the Slurm campaign's datasets (types, data IDs) differ from the reference"
  head -20 "$tmp/diff-ids.txt"
elif ! diff <(grep $'\t' "$tmp/ref.txt") <(grep $'\t' "$tmp/slurm.txt") >"$tmp/diff.txt"; then
  bad "the Slurm campaign's outputs have other checksums than the reference: $(grep '^<' "$tmp/diff.txt" | cut -f1 | sed 's/^< //' | sort | uniq -c | awk '{printf "%s x%s, ", $2, $1}')"
  head -6 "$tmp/diff.txt"
else
  echo "identical: $n_ref datasets, same types, data IDs and checksums"
fi
"$drp" verify --repo "$tmp/slurm" >/dev/null 2>&1 || bad "drp verify of the Slurm repository failed"

step "Slurm, pass 3: everything is done; the jobs only check"
submit_and_wait "$tmp/logs3" 120
[ "$(count_state COMPLETED)" -eq 4 ] || bad "pass 3: wanted 4 COMPLETED jobs, got $(count_state COMPLETED)"
run3="$(cat "$tmp/logs3"/*.log | quanta_run)"
[ "$run3" -eq 0 ] || bad "pass 3 ran $run3 quanta; everything was done"
"$drp" datasets --repo "$tmp/slurm" --collection processed --checksums 2>/dev/null | grep $'\t' \
  | diff -q - <(grep $'\t' "$tmp/slurm.txt") >/dev/null || bad "the outputs changed in pass 3"

echo "timings: reference campaign ${ref_time} s; Slurm pass 2 ${slurm_time:-?} s (submission to the end of the global job); total $((SECONDS - t0)) s"
[ "$fail" -eq 0 ] && echo "slurm campaign: all checks passed"
exit "$fail"
