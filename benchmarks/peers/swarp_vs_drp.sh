#!/usr/bin/env bash
# Peer comparison of coaddition on the same calexps and the same output grid: SWarp (Debian swarp, 2.41) vs
# `drp coadd-images`. Reports the wall time of each at 1 and 2 threads and their ratio, pixel-level agreement,
# and aperture fluxes of bright isolated stars on both coadds (drp / SWarp, and each / the simulator's truth).
#   benchmarks/peers/swarp_vs_drp.sh [REPO]
# REPO: a repository with processed calexps of one area (RUN, default 'processed') and the simulator's truth.
# Without REPO, one is simulated: 6 visits in r of one 2048 x 2048 detector (0.4"/px), dithered by up to
# 0.02 deg and rotated by up to 10 deg, processed with process-visit.
# Environment: DRP (default build/drp), REPEATS (3: each tool runs that many times, fastest reported),
# KEEP=1 keeps the work directory.
#
# Shared setup (benchmarks/peers/swarp_eval.py prep): each calexp's IMAGE plane is written as a plain FITS image
# with its TAN-SIP WCS and FLXSCALE = its PhotoCalib mean (nJy/ADU), and 1/VARIANCE as its weight map (0 on the
# mask planes drp excludes: NO_DATA, BAD, SAT, EDGE); the output grid (north-up TAN covering every calexp) is
# written as coadd.head, which SWarp reads as the output header of coadd.fits and drp reads with --template.
# Both coadds are therefore in nJy on identical grids. SWarp: RESAMPLING_TYPE LANCZOS3, COMBINE_TYPE WEIGHTED
# (per-pixel inverse-variance), WEIGHT_TYPE MAP_WEIGHT, SUBTRACT_BACK N (calexps are background-subtracted),
# FSCALASTRO_TYPE VARIABLE (per-pixel area scaling, as drp's Jacobian), RESCALE_WEIGHTS N, NTHREADS 1 or 2.
# drp reads the calexps themselves (mask, variance, PhotoCalib and PSF) with --combine weighted (the same
# per-pixel weights), --threads 1 or 2; and once with the default --combine input-weighted (one weight per
# input, 1/median variance; unbiased for bright stars), compared with SWarp given constant weight maps of the
# same values (in_k.iweight.fits), and once on SWarp's plain inputs (--weight-suffix) to show both input
# kinds agree. SWarp 2.41 ignores SIP keywords, so prep gives it each calexp's TAN-SIP distortion as TAN + PV
# (TPV, exact for SIP order 3) in an external header in_k.head; drp reads the SIP header itself. Timing (/usr/bin/time: wall and user + system CPU, fastest of REPEATS) includes reading the
# inputs and writing the coadd for both tools (SWarp also writes its resampled temporaries, as it always does)
# and drp's MPI start-up. The CPU time is the steadier figure on a shared machine.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
drp="${DRP:-$here/build/drp}"
repeats="${REPEATS:-3}"
py=/usr/bin/python3
command -v SWarp >/dev/null || { echo "SWarp is not installed (apt-get install swarp)"; exit 2; }
work="$(mktemp -d)"
if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi

repo="${1:-}"
if [ -z "$repo" ]; then
  repo="$work/repo"
  echo "simulating 6 visits of one 2048x2048 detector into $repo ..."
  "$drp" sim --repo "$repo" --preset demo --set observing.bands=r --set observing.visits_per_band=6 \
    --set camera.detectors_x=1 --set camera.detectors_y=1 --set camera.detector_width=2048 \
    --set camera.detector_height=2048 --set observing.dither_radius_deg=0.02 --set observing.rotation_min_deg=0 \
    --set observing.rotation_max_deg=10 --set sky.star_density_per_deg2=25000 --set sky.asteroids_per_deg2=0 \
    --set sky.transients_per_deg2=0 >/dev/null
  "$drp" build-calibs --repo "$repo" >/dev/null
  "$drp" process-visit --repo "$repo" >/dev/null
fi
mapfile -t calexps < <(find "$repo/${RUN:-processed}/calexp" -name '*.fits' | sort)
[ "${#calexps[@]}" -ge 2 ] || { echo "fewer than 2 calexps under $repo/${RUN:-processed}/calexp"; exit 2; }
echo "${#calexps[@]} calexps under $repo/${RUN:-processed}/calexp"

"$py" "$here/benchmarks/peers/swarp_eval.py" prep "$work" "${calexps[@]}"
inputs=()
for ((k = 0; k < ${#calexps[@]}; ++k)); do inputs+=("$work/in_$k.fits"); done
times="$work/times.tsv"
: >"$times"

run_swarp() {  # threads [output-name weight-suffix]
  local name="${2:-swarp}"
  rm -rf "$work/resamp"; mkdir -p "$work/resamp"
  cp "$work/coadd.head" "$work/$name.head"
  /usr/bin/time -f "%e %U %S" -o "$work/t" SWarp "${inputs[@]}" -c /dev/null -IMAGEOUT_NAME "$work/$name.fits" \
    -WEIGHTOUT_NAME "$work/$name.weight.fits" -HEADER_SUFFIX .head -WEIGHT_TYPE MAP_WEIGHT -WEIGHT_SUFFIX "${3:-.weight.fits}" -COMBINE Y -COMBINE_TYPE WEIGHTED \
    -RESAMPLE Y -RESAMPLING_TYPE LANCZOS3 -OVERSAMPLING 0 -INTERPOLATE N -SUBTRACT_BACK N \
    -FSCALASTRO_TYPE VARIABLE -FSCALE_KEYWORD FLXSCALE -FSCALE_DEFAULT 1.0 -GAIN_DEFAULT 0.0 -RESCALE_WEIGHTS N \
    -BLANK_BADPIXELS N -CELESTIAL_TYPE NATIVE -PROJECTION_TYPE TAN -RESAMPLE_DIR "$work/resamp" \
    -DELETE_TMPFILES Y -COPY_KEYWORDS OBJECT -WRITE_XML N -NTHREADS "$1" -VERBOSE_TYPE QUIET \
    >"$work/swarp.log" 2>&1 || { echo "SWarp failed:"; cat "$work/swarp.log"; exit 1; }
  echo "${name}_t$1 $(tail -1 "$work/t")" >>"$times"
}
run_drp() {  # label threads args...
  local label="$1" threads="$2"
  shift 2
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$drp" coadd-images "$@" --template "$work/coadd.head" --kernel lanczos3 --threads "$threads" \
    --out "$work/drp_$label.fits" >"$work/drp_$label.log" 2>&1 || { echo "drp failed:"; cat "$work/drp_$label.log"; exit 1; }
  echo "drp_${label}_t$threads $(tail -1 "$work/t")" >>"$times"
}

for ((i = 0; i < repeats; ++i)); do
  for nt in 1 2; do
    run_swarp "$nt"
    run_drp weighted "$nt" "${calexps[@]}" --combine weighted
  done
done
run_swarp 1 swarp_inputw .iweight.fits
run_drp input-weighted 1 "${calexps[@]}" --combine input-weighted
run_drp plain-inputs 1 "${inputs[@]}" --weight-suffix .weight.fits --weight-type inverse-variance --combine weighted
cat "$work/drp_weighted.log"
# SWarp coadds every input pixel it is given; check it used our grid.
"$py" - "$work" <<'PY'
import sys
from astropy.io import fits
w = sys.argv[1]
a, b = fits.getheader(f"{w}/swarp.fits"), fits.getheader(f"{w}/drp_weighted.fits", "IMAGE")
for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD2_2"):
    if abs(float(a[k]) - float(b[k])) > 1e-9 * max(1.0, abs(float(a[k]))):
        raise SystemExit(f"grids differ: {k} SWarp {a[k]} drp {b[k]}")
print(f"same output grid: {a['NAXIS1']} x {a['NAXIS2']}")
PY
"$py" "$here/benchmarks/peers/swarp_eval.py" eval "$work" "$repo/sim/truth/sources" "$times"
