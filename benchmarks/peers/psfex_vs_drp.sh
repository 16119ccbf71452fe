#!/usr/bin/env bash
# Peer comparison of PSF models on the same calexp: PSFEx (Debian psfex, fed by a SExtractor LDAC catalog
# with vignettes as /usr/share/psfex/prepsfex.sex makes) vs drp's PSFEx-like PsfexPsf (the one
# `drp process-visit` stored in the calexp, and the one `drp measure-image` re-fits on the calexp), both
# evaluated against the simulator's true PSF (a MoffatPsf varying over the detector, rebuilt from the
# truthSources metadata by `drp export-psf --truth`) on a PSF_GRID x PSF_GRID grid (default 5) of cell
# centres over the detector. Reports, per model, median and max over the grid of |dT/T| (T = Ixx + Iyy from
# adaptive moments), |de1|, |de2| (distortion), the pixel residual max|model - truth| / peak, the
# centroid offset, the number of stars each tool used, and the wall time of each tool (one thread each).
#   [RUN=processed] benchmarks/peers/psfex_vs_drp.sh REPO [CALEXP_SUBSTRING]   (a repo with a processed run)
# Environment: DRP (default build/drp), PSF_GRID (5), PSFEX_SIZE (PSF_SIZE side, default 25),
# PSFEX_SAMPLING (PSF_SAMPLING, default 1.0: native pixels like drp; 0 = PSFEx's automatic choice),
# REPEATS (3: each tool is run that many times and its fastest run reported), KEEP=1 to keep the work
# directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
drp="${DRP:-$here/build/drp}"
repo="$1"
pattern="${2:-}"
grid="${PSF_GRID:-5}"
size="${PSFEX_SIZE:-25}"
sampling="${PSFEX_SAMPLING:-1.0}"
repeats="${REPEATS:-3}"
py=/usr/bin/python3
for tool in source-extractor psfex; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install $tool)"; exit 2; }
done
calexp="$(find "$repo/${RUN:-processed}/calexp" -name '*.fits' | grep -F -- "$pattern" | sort | head -1)"
[ -n "$calexp" ] || { echo "no calexp matching '$pattern' under $repo/${RUN:-processed}/calexp"; exit 2; }
name="$(basename "$calexp" .fits)"; name="${name#calexp_}"
truth="$(find "$repo/sim/truth/sources" -name "sources_${name}.h5")"
[ -n "$truth" ] || { echo "no truthSources for $name"; exit 2; }
work="$(mktemp -d)"
if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
now() { date +%s.%N; }
echo "calexp: $calexp"

# --- drp: the calexp's PSF (fitted by process-visit) and the truth, on the grid.
"$drp" export-psf "$calexp" --grid "$grid" --out "$work/drp_calexp.fits" >/dev/null
"$drp" export-psf "$calexp" --truth "$truth" --grid "$grid" --out "$work/truth.fits" >/dev/null
# --- drp measure-image on the calexp (its variance plane as the weight): background, cosmic rays, bright-star
# detection and PSF re-run on the calexp; step times from the verbose log.
for ((i = 0; i < repeats; ++i)); do
  "$drp" --log-level verbose measure-image "$calexp" --hdu 1 --weight "$calexp" --weight-hdu 3 --weight-type variance \
    --out "$work/drp.h5" --psf-out "$work/drp_measure.fits" --psf-grid "$grid" >"$work/drp.out" 2>>"$work/drp.log"
done
steptime() { sed -n "s/.*timing: $1: \([0-9.e+-]*\) s.*/\1/p" "$work/drp.log" | sort -g | head -1; }
t_bkg="$(steptime BKG)"; t_cr="$(steptime CR)"; t_bright="$(steptime BRIGHT)"; t_psf="$(steptime PSF)"
drp_used="$(sed -n 's/.* from \([0-9]*\) stars.*/\1/p' "$work/drp.out")"

# --- SExtractor -> LDAC catalog with 35x35 vignettes (prepsfex.param plus SNR_WIN, which PSFEx 3.21
# requires), then PSFEx. The calexp is in electrons (GAIN 1) and background-subtracted; SExtractor
# re-estimates its background and takes the variance plane as its weight. Thresholds, aperture and vignette
# size as prepsfex.sex.
{ grep -v '^#' /usr/share/psfex/prepsfex.param | grep -v '^ *$'; echo SNR_WIN; } >"$work/prepsfex.param"
cp /usr/share/source-extractor/default.conv "$work/default.conv" 2>/dev/null || cp /usr/share/psfex/default.conv "$work/default.conv"
best_sex=1e9; best_psfex=1e9
for ((i = 0; i < repeats; ++i)); do
t0=$(now)
source-extractor "$calexp[1]" -c /usr/share/psfex/prepsfex.sex -PARAMETERS_NAME "$work/prepsfex.param" \
  -FILTER_NAME "$work/default.conv" -CATALOG_TYPE FITS_LDAC -CATALOG_NAME "$work/prepsfex.cat" \
  -WEIGHT_IMAGE "$calexp[3]" -WEIGHT_TYPE MAP_VAR -GAIN 1.0 -SATUR_LEVEL 1e9 -NTHREADS 1 \
  -VERBOSE_TYPE QUIET >"$work/sex.log" 2>&1 || { echo "source-extractor failed:"; cat "$work/sex.log"; exit 1; }
t1=$(now)
psfex "$work/prepsfex.cat" -c /usr/share/psfex/default.psfex -PSFVAR_DEGREES 2 -PSF_SAMPLING "$sampling" \
  -PSF_SIZE "$size,$size" -CHECKPLOT_TYPE NONE -CHECKIMAGE_TYPE NONE -WRITE_XML N -PSF_DIR "$work" \
  -NTHREADS 1 -VERBOSE_TYPE NORMAL >"$work/psfex.log" 2>&1 || { echo "psfex failed:"; cat "$work/psfex.log"; exit 1; }
t2=$(now)
best_sex="$(awk -v a="$t0" -v b="$t1" -v m="$best_sex" 'BEGIN { d = b - a; print (d < m ? d : m) }')"
best_psfex="$(awk -v a="$t1" -v b="$t2" -v m="$best_psfex" 'BEGIN { d = b - a; print (d < m ? d : m) }')"
done
[ -f "$work/prepsfex.psf" ] || { echo "psfex wrote no .psf:"; cat "$work/psfex.log"; exit 1; }

"$py" "$here/benchmarks/peers/psfex_eval.py" "$work/truth.fits" --grid "drp (calexp)=$work/drp_calexp.fits" \
  --grid "drp (measure-image)=$work/drp_measure.fits" --psfex "PSFEx=$work/prepsfex.psf"
calexp_used="$("$py" -c "import h5py,glob,sys; print(h5py.File(sys.argv[1])['src'].attrs['PSFNUSED'])" \
  "$(find "$repo/${RUN:-processed}/src" -name "src_${name}.h5" | head -1)" 2>/dev/null || echo "?")"
awk -v sex="$best_sex" -v pfx="$best_psfex" -v rep="$repeats" -v bkg="$t_bkg" -v cr="$t_cr" -v br="$t_bright" -v psf="$t_psf" \
    -v du="$drp_used" -v cu="$calexp_used" 'BEGIN {
  printf "stars used: drp (calexp) %s, drp (measure-image) %s (PSFEx counts above)\n", cu, du
  printf "time (1 thread, best of %d): SExtractor LDAC %.2f s + PSFEx %.2f s = %.2f s;  drp PSF step %.3f s, background + CR + bright-star detection + PSF %.2f s\n",
         rep, sex, pfx, sex + pfx, psf, bkg + cr + br + psf
  printf "time ratio PSF step drp/PSFEx: %.3f;  catalog + PSF drp/(SExtractor + PSFEx): %.3f\n", psf / pfx, (bkg + cr + br + psf) / (sex + pfx)
}'
