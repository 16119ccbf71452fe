#!/usr/bin/env bash
# Peer comparison on the same calibrated image: SExtractor (Debian source-extractor) vs
# `drp measure-image`, SExtractor twice (a minimal catalog: position and FLUX_AUTO; and the measurements drp's
# catalog has, "SExtr. full"), all matched to the simulator's truth. Reports the wall and CPU time of each,
# completeness of point sources, purity, and flux scatter (robust, after removing each catalog's
# own median scale, so zero point and aperture choices cancel).
#   benchmarks/peers/sextractor_vs_drp.sh REPO [VISIT DETECTOR]   (a repo with a processed run)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
drp="${DRP:-$here/build/drp}"
repo="$1"
command -v source-extractor >/dev/null || { echo "source-extractor is not installed (apt-get install source-extractor)"; exit 2; }
calexp="$(find "$repo/processed/calexp" -name '*.fits' | sort | head -1)"
name="$(basename "$calexp" .fits)"; name="${name#calexp_}"
truth="$(find "$repo/sim/truth/sources" -name "sources_${name}.h5")"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cat > "$work/sex.param" <<'P'
NUMBER
X_IMAGE
Y_IMAGE
FLUX_AUTO
FLUXERR_AUTO
FLAGS
P
# The same measurements as drp's catalog, where SExtractor has them: windowed centroid and second moments
# (drp's Gaussian centroid and adaptive moments), Kron flux and radius, drp's eight apertures (radii 3-35 px,
# SExtractor takes diameters), the local background, the peak and the star/galaxy class (extendedness). Not
# PSF fluxes, which need a PSFEx model first.
{ cat "$work/sex.param"; cat <<'P'
XWIN_IMAGE
YWIN_IMAGE
ERRX2WIN_IMAGE
ERRY2WIN_IMAGE
X2WIN_IMAGE
Y2WIN_IMAGE
XYWIN_IMAGE
KRON_RADIUS
FLUX_APER(8)
FLUXERR_APER(8)
BACKGROUND
FLUX_MAX
CLASS_STAR
P
} > "$work/sex_full.param"
cp /usr/share/source-extractor/gauss_3.0_7x7.conv "$work/filter.conv"
# The calexp is background-subtracted; SExtractor estimates its own background and noise (as drp does
# without a weight map), detects at 1.5 sigma per pixel over 5 pixels after Gaussian filtering.
# Wall time and, with /usr/bin/time, the CPU time (user + sys), peak resident set and minor page faults of
# each: on a shared machine the CPU time is the fairer measure (drp's wall time also includes its start-up:
# 0.03 s for a measure-image of a missing file on the 2-core VM).
cpu() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "%U %S %M %R" -o "$1" "${@:2}"; else echo "nan nan nan nan" > "$1"; "${@:2}"; fi; }
t0=$(date +%s.%N)
cpu "$work/sex.cpu" source-extractor "$calexp[1]" -c /dev/null -PARAMETERS_NAME "$work/sex.param" -FILTER_NAME "$work/filter.conv" \
  -CATALOG_TYPE ASCII_HEAD -CATALOG_NAME "$work/sex.cat" -DETECT_THRESH 1.5 -DETECT_MINAREA 5 \
  -VERBOSE_TYPE QUIET >/dev/null 2>&1 || true
t1=$(date +%s.%N)
cpu "$work/sexfull.cpu" source-extractor "$calexp[1]" -c /dev/null -PARAMETERS_NAME "$work/sex_full.param" -FILTER_NAME "$work/filter.conv" \
  -CATALOG_TYPE ASCII_HEAD -CATALOG_NAME "$work/sexfull.cat" -DETECT_THRESH 1.5 -DETECT_MINAREA 5 \
  -PHOT_APERTURES 6,9,12,18,24,34,50,70 -SEEING_FWHM 1.1 -PIXEL_SCALE 0 \
  -STARNNW_NAME /usr/share/source-extractor/default.nnw -VERBOSE_TYPE QUIET >/dev/null 2>&1 || true
t1b=$(date +%s.%N)
cpu "$work/drp.cpu" "$drp" measure-image "$calexp" --hdu 1 --out "$work/drp.h5" >/dev/null
t2=$(date +%s.%N)
/usr/bin/python3 - "$work/sex.cat" "$work/drp.h5" "$truth" "$t0" "$t1" "$t2" "$work/sex.cpu" "$work/drp.cpu" \
  "$work/sexfull.cat" "$t1b" "$work/sexfull.cpu" <<'PY'
import sys, numpy as np, h5py
sexcat, drpcat, truthf, t0, t1, t2, sexcpu, drpcpu, sexfullcat, t1b, sexfullcpu = sys.argv[1:]
def cputime(f):  # user, sys seconds, peak RSS KB, minor faults (the last line: /usr/bin/time may print a status line first)
    u, s, m, r = open(f).read().split("\n")[-2].split()[:4]
    return float(u), float(s), float(m), float(r)
s = np.loadtxt(sexcat, comments="#", ndmin=2)
sx, sy, sflux = s[:, 1] - 1, s[:, 2] - 1, s[:, 3]            # SExtractor pixels are 1-based
d = h5py.File(drpcat)["src"]
dx, dy, dflux = d["x"][:], d["y"][:], d["psfFlux"][:]
dsnr = np.nan_to_num(dflux / d["psfFluxErr"][:], nan=-1.0)
t = h5py.File(truthf)["sources"]
tx, ty, te, ttype = t["x"][:], t["y"][:], t["electronsInImage"][:], t["type"][:]
sky = t.attrs["SKYELEC"]
def evaluate(x, y, flux, label, seconds, cpu):
    stars = (ttype == 0) | (ttype == 2)
    snr = te / np.sqrt(te + 4 * np.pi * 2.5**2 * sky)
    sel = np.where(stars & (snr > 10) & (tx > 20) & (ty > 20) & (tx < tx.max() - 20) & (ty < ty.max() - 20))[0]
    found, ratios = 0, []
    for i in sel:
        r = np.hypot(x - tx[i], y - ty[i]); j = np.argmin(r)
        if r[j] < 1.5:
            found += 1
            if 20 < snr[i] < 200: ratios.append(flux[j] / te[i])
    ratios = np.array(ratios); ratios = ratios / np.median(ratios)
    spurious = sum(1 for j in range(len(x)) if np.min(np.hypot(tx - x[j], ty - y[j])) > 2.0)
    mad = 1.4826 * np.median(np.abs(ratios - 1))
    print(f"{label:12s} {seconds:7.2f} s (CPU user {cpu[0]:.2f} s + sys {cpu[1]:.2f} s, peak RSS {cpu[2]/1024:.0f} MB, "
          f"{cpu[3]/1000:.1f}k page faults)  {len(x):6d} detections  completeness(S/N>10 stars) {100*found/max(len(sel),1):5.1f}%  "
          f"unmatched {100*spurious/max(len(x),1):5.1f}%  flux scatter (S/N 20-200) {100*mad:5.2f}%")
    return seconds
sc, dc, fc = cputime(sexcpu), cputime(drpcpu), cputime(sexfullcpu)
f = np.loadtxt(sexfullcat, comments="#", ndmin=2)
a = evaluate(sx, sy, sflux, "SExtractor", float(t1) - float(t0), sc)
af = evaluate(f[:, 1] - 1, f[:, 2] - 1, f[:, 3], "SExtr. full", float(t1b) - float(t1), fc)
b = evaluate(dx, dy, dflux, "drp", float(t2) - float(t1b), dc)
# Purity at the same depth: drp's brightest detections (PSF-flux S/N), as many as SExtractor's.
top = np.argsort(-dsnr)[:len(sx)]
unmatched = sum(1 for j in top if np.min(np.hypot(tx - dx[j], ty - dy[j])) > 2.0)
print(f"drp's {len(top)} highest-S/N detections (SExtractor's count; S/N >= {dsnr[top[-1]]:.1f}): unmatched {100 * unmatched / max(len(top), 1):.1f}%")
print(f"time ratio drp/SExtractor: wall {b/a:.2f}, user CPU {dc[0]/sc[0]:.2f}, user+sys CPU {(dc[0]+dc[1])/(sc[0]+sc[1]):.2f}")
print(f"time ratio drp/SExtractor with the same measurements (SExtr. full): wall {b/af:.2f}, user CPU {dc[0]/fc[0]:.2f}, "
      f"user+sys CPU {(dc[0]+dc[1])/(fc[0]+fc[1]):.2f}")
PY
