#!/usr/bin/env bash
# PSF export for comparisons with other tools (benchmarks/peers/psfex_vs_drp.sh):
#  - `drp export-psf CALEXP` writes the calexp's PsfexPsf on a grid, `--truth TRUTH.h5` the simulator's true
#    MoffatPsf on the same grid; `drp measure-image --psf-out` the PSF it fits;
#  - file layout (STAMPS image, POSITIONS table), unit-sum stamps centred on the middle pixel;
#  - the model agrees with the truth (adaptive-moment size within 3%) on a dense simulated field;
#  - bad options and inputs are refused with a message.
set -u
drp="$1"
here="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
repo="$tmp/r"

# One 1536^2 detector at 0.2"/px in a dense star field.
"$drp" sim --repo "$repo" --preset demo --set observing.bands=r --set observing.visits_per_band=1 \
  --set camera.detectors_x=1 --set camera.detectors_y=1 --set camera.detector_width=1536 \
  --set camera.detector_height=1536 --set camera.plate_scale_arcsec_per_mm=20 \
  --set sky.star_density_per_deg2=80000 >/dev/null 2>&1 || bad "sim"
"$drp" build-calibs --repo "$repo" >/dev/null 2>&1 || bad "build-calibs"
"$drp" process-visit --repo "$repo" >/dev/null 2>&1 || bad "process-visit"
calexp="$(find "$repo/processed/calexp" -name '*.fits' | head -1)"
truth="$(find "$repo/sim/truth/sources" -name '*.h5' | head -1)"

out="$("$drp" export-psf "$calexp" --out "$tmp/model.fits" 2>&1)" || bad "export-psf: exit $?"$'\n'"$out"
grep -q "^export-psf: model PSF (PsfexPsf) at 5 x 5 positions over 1536x1536" <<<"$out" || bad "export-psf summary"$'\n'"$out"
out="$("$drp" export-psf "$calexp" --truth "$truth" --grid 4 --stamp 31 --out "$tmp/truth4.fits" 2>&1)" \
  || bad "export-psf --truth: exit $?"$'\n'"$out"
grep -q "^export-psf: true PSF (MoffatPsf) at 4 x 4 positions" <<<"$out" || bad "export-psf --truth summary"$'\n'"$out"
"$drp" export-psf "$calexp" --truth "$truth" --out "$tmp/truth.fits" >/dev/null 2>&1 || bad "export-psf --truth (5x5)"
out="$("$drp" measure-image "$calexp" --hdu 1 --out "$tmp/cat.h5" --psf-out "$tmp/measured.fits" --psf-grid 5 2>&1)" \
  || bad "measure-image --psf-out"$'\n'"$out"
[ -s "$tmp/measured.fits" ] || bad "measure-image --psf-out wrote nothing"

# Refusals.
out="$("$drp" export-psf "$calexp" --grid 0 --out "$tmp/x.fits" 2>&1)" && bad "--grid 0 accepted"
grep -q "1..100 positions" <<<"$out" || bad "--grid 0 message"$'\n'"$out"
out="$("$drp" export-psf "$calexp" --stamp 20 --out "$tmp/x.fits" 2>&1)" && bad "--stamp 20 accepted"
grep -q "must be odd" <<<"$out" || bad "--stamp 20 message"$'\n'"$out"
src="$(find "$repo/processed/src" -name '*.h5' | head -1)"
out="$("$drp" export-psf "$calexp" --truth "$src" --out "$tmp/x.fits" 2>&1)" && bad "a Source table accepted as truth"
grep -q "$(basename "$src")" <<<"$out" || bad "bad --truth: message does not name the file"$'\n'"$out"
[ -e "$tmp/x.fits" ] && bad "a refused export left a file"

if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import astropy, numpy" 2>/dev/null; then
  /usr/bin/python3 - "$tmp" <<'PY' || bad "file layout"
import sys
import numpy as np
from astropy.io import fits
tmp = sys.argv[1]
for name, n, s in (("model", 5, None), ("truth4", 4, 31), ("measured", 5, None)):
    with fits.open(f"{tmp}/{name}.fits") as h:
        assert h[0].header["GRIDN"] == n, name
        s = s or h[0].header["STAMP"]
        assert h[0].header["STAMP"] == s and s % 2 == 1, name
        st = h["STAMPS"].data.reshape(n * n, s, s)
        pos = h["POSITIONS"].data
        assert len(pos) == n * n, name
        # Cell centres, row-major in x.
        w = h[0].header["BBOXW"]
        assert abs(pos["x"][1] - pos["x"][0] - w / n) < 1e-9 and pos["y"][1] == pos["y"][0], name
        for k in range(n * n):
            assert np.unravel_index(np.argmax(st[k]), st[k].shape) == (s // 2, s // 2), (name, k)
            # Uncropped stamps sum to 1; the 31-pixel truth stamps are crops of a larger kernel.
            assert abs(st[k].sum() - 1) < (1e-9 if name != "truth4" else 0.02), (name, k, st[k].sum())
print("layout ok")
PY
  res="$(/usr/bin/python3 "$here/benchmarks/peers/psfex_eval.py" "$tmp/truth.fits" --grid "calexp=$tmp/model.fits" \
    --grid "measured=$tmp/measured.fits" 2>&1)" || bad "psfex_eval"$'\n'"$res"
  echo "$res"
  # Max |dT/T| over the grid below 3% for both drp models.
  awk '$1 == "calexp" || $1 == "measured" { n++; if (!($4 + 0 < 0.03)) bad = 1 } END { exit !(n == 2 && !bad) }' <<<"$res" \
    || bad "PSF model size off the truth by more than 3%"$'\n'"$res"
else
  echo "layout and truth checks skipped: /usr/bin/python3 with astropy and numpy not available"
fi

[ "$fail" -eq 0 ] && echo "psf export: all checks passed"
exit "$fail"
