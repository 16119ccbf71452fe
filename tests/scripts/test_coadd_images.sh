#!/usr/bin/env bash
# drp coadd-images on synthesized images with known truth (python/astropy), for 3 seeds:
#  - plain single-HDU images of different BITPIX (int16 with BSCALE/BZERO, float32, float64), TAN or TAN-SIP
#    headers, different pointings, rotations and pixel scales, with FLXSCALE; noise estimated, or for one
#    of them an inverse-variance weight map (--weight). Output grid from a SWarp-style text header (.head),
#    and again from a FITS template: the output grid equals the template's (shape, CRPIX, CRVAL, CD), both
#    runs give identical pixels, and the aperture fluxes of the injected Gaussian stars equal their true
#    fluxes (median within 0.5%, every star within 3%) after warping onto a rotated grid of another scale;
#    the coadd's pixel noise matches its variance plane (10%);
#  - calexp-layout inputs (IMAGE/MASK/VARIANCE HDUs, CALIBMN): the coadd is in nJy (BUNIT), star fluxes
#    conserved, and a star under a BAD region of one input is measured from the other input alone;
#  - --center/--size/--pixel-scale gives the requested grid;
#  - bad inputs (a missing file, an image without WCS, a truncated FITS file, a template without WCS) fail
#    with a nonzero exit and a message naming the file.
set -u
drp="$1"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
if ! "$py" -c "import astropy, numpy" 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 lacks astropy/numpy"
  exit 0
fi

# --- synthesis: images, weight, templates, truth (ra, dec, flux) --------------------------------------------
cat >"$tmp/make.py" <<'PY'
import sys
import warnings
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

warnings.simplefilter("ignore")  # HIERARCH mask-plane keys, header padding
out, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
ra0, dec0 = 150.0 + rng.uniform(-1, 1), 2.0 + rng.uniform(-1, 1)
nstar = 30
# Stars within ~30 arcsec of the centre (every input covers them), separated by >= 6 arcsec.
pos = []
while len(pos) < nstar:
    p = rng.uniform(-30, 30, 2)
    if all(np.hypot(*(p - q)) > 6 for q in pos):
        pos.append(p)
pos = np.array(pos)
sra = ra0 + pos[:, 0] / 3600 / np.cos(np.radians(dec0))
sdec = dec0 + pos[:, 1] / 3600
flux = 10 ** rng.uniform(4.0, 5.0, nstar)          # true flux, output units
np.savetxt(f"{out}/truth.txt", np.stack([sra, sdec, flux], 1))
sigma_arcsec = 0.8

def header(nx, ny, scale, rot_deg, dra, ddec, sip=False):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0 + dra / 3600 / np.cos(np.radians(dec0)), dec0 + ddec / 3600]
    w.wcs.crpix = [(nx + 1) / 2 + 3.3, (ny + 1) / 2 - 2.1]
    t = np.radians(rot_deg)
    w.wcs.cd = scale / 3600 * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    h = w.to_header()
    if sip:
        h["A_ORDER"], h["B_ORDER"] = 2, 2
        h["A_2_0"], h["A_1_1"], h["B_0_2"] = 2e-5, -1e-5, 1.5e-5
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        h.remove(k, ignore_missing=True)
    for i in range(2):
        for j in range(2):
            h[f"CD{i + 1}_{j + 1}"] = w.wcs.cd[i, j]
    return h

def render(h, nx, ny, scale, unit_scale, noise):
    """Image in 'input units' (output units / unit_scale) of the stars + Gaussian noise (sigma `noise`)."""
    w = WCS(h)
    x, y = (w.all_world2pix(sra, sdec, 0) if "A_ORDER" in h else w.wcs_world2pix(sra, sdec, 0))
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = np.zeros((ny, nx))
    s = sigma_arcsec / scale
    for xi, yi, f in zip(x, y, flux):
        # pixel-integrated Gaussian (erf), so the total over pixels is exactly the flux
        from math import erf, sqrt
        ex = np.array([erf((k + 0.5 - xi) / (sqrt(2) * s)) - erf((k - 0.5 - xi) / (sqrt(2) * s)) for k in range(nx)]) / 2
        ey = np.array([erf((k + 0.5 - yi) / (sqrt(2) * s)) - erf((k - 0.5 - yi) / (sqrt(2) * s)) for k in range(ny)]) / 2
        img += f / unit_scale * np.outer(ey, ex)
    return img + rng.normal(0, noise, img.shape)

# Three plain images: int16 (BSCALE/BZERO), float32 with a weight map, float64 with SIP; FLXSCALE takes each
# to output units. Noise 2 input units.
specs = [("img0.fits", 16, 0.50, 3.0, 2.0, -1.5, False, 4.0),
         ("img1.fits", -32, 0.52, -7.0, -3.0, 2.0, False, 2.5),
         ("img2.fits", -64, 0.48, 12.0, 1.0, 3.0, True, 5.0)]
for name, bitpix, scale, rot, dra, ddec, sip, fs in specs:
    nx, ny = 220, 210
    h = header(nx, ny, scale, rot, dra, ddec, sip)
    h["FLXSCALE"] = fs
    img = render(h, nx, ny, scale, fs, 2.0)
    if bitpix == 16:
        hdu = fits.PrimaryHDU(img.astype(np.float32), h)
        hdu.scale("int16", bscale=0.25, bzero=4000.0)  # quantisation 0.25 << noise 2
    else:
        hdu = fits.PrimaryHDU(img.astype(np.float32 if bitpix == -32 else np.float64), h)
    hdu.writeto(f"{out}/{name}", overwrite=True)
    if name == "img1.fits":
        fits.PrimaryHDU(np.full((ny, nx), 1 / 4.0, np.float32)).writeto(f"{out}/img1.weight.fits", overwrite=True)

# Two calexp-layout inputs (nJy = CALIBMN x ADU); input 0 has a BAD box over star 0.
for k, (rot, dra, calib) in enumerate([(5.0, 1.5, 0.8), (-4.0, -2.0, 1.25)]):
    nx, ny = 220, 210
    h = header(nx, ny, 0.5, rot, dra, -dra, False)
    img = render(h, nx, ny, 0.5, calib, 2.0).astype(np.float32)
    mask = np.zeros((ny, nx), np.int32)
    if k == 0:
        x0, y0 = WCS(h).wcs_world2pix(sra[:1], sdec[:1], 0)
        mask[int(y0[0]) - 8:int(y0[0]) + 9, int(x0[0]) - 8:int(x0[0]) + 9] = 1  # BAD
        # Dead pixels (0) under BAD. (The warper lets masked input pixels into outputs they weigh < 1% in
        # (stages/coadd/Warper.h maskWeightThreshold), so values far off the sky, unlike a calexp's
        # interpolated BAD pixels, would bias neighbours; a dead star core must not bias star 0.)
        img[mask == 1] = 0.0
    ph = fits.Header()
    ph["CALIBMN"] = calib
    mh = fits.Header()
    for b, plane in enumerate(["BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA"]):
        mh[f"HIERARCH MP_{plane}"] = b
    hdus = [fits.PrimaryHDU(header=ph), fits.ImageHDU(img, h, name="IMAGE"), fits.ImageHDU(mask, h + mh, name="MASK"),
            fits.ImageHDU(np.full((ny, nx), 4.0, np.float32), h, name="VARIANCE")]
    fits.HDUList(hdus).writeto(f"{out}/calexp{k}.fits", overwrite=True)

# Output grid: 170 x 160 at 0.45"/px rotated by 20 degrees, as a SWarp text header and as a FITS template.
t = np.radians(20.0)
g = fits.Header()
g["NAXIS"], g["NAXIS1"], g["NAXIS2"] = 2, 170, 160
g["CTYPE1"], g["CTYPE2"] = "RA---TAN", "DEC--TAN"
g["CRVAL1"], g["CRVAL2"] = ra0, dec0
g["CRPIX1"], g["CRPIX2"] = 85.5, 80.5
cd = 0.45 / 3600 * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
for i in range(2):
    for j in range(2):
        g[f"CD{i + 1}_{j + 1}"] = cd[i, j]
with open(f"{out}/grid.head", "w") as f:
    for c in g.cards:
        f.write(str(c) + "\n")
    f.write("END\n")
gh = g.copy()
for k in ("NAXIS", "NAXIS1", "NAXIS2"):
    del gh[k]
fits.PrimaryHDU(np.zeros((160, 170), np.float32), gh).writeto(f"{out}/grid.fits", overwrite=True)
# Bad inputs: no WCS; truncated; a template without WCS.
fits.PrimaryHDU(np.zeros((50, 50), np.float32)).writeto(f"{out}/nowcs.fits", overwrite=True)
data = open(f"{out}/img1.fits", "rb").read()
open(f"{out}/truncated.fits", "wb").write(data[: len(data) // 2])
with open(f"{out}/nowcs.head", "w") as f:
    f.write("NAXIS1  =                  100\nNAXIS2  =                  100\nEND\n")
PY

# --- checks on a coadd ---------------------------------------------------------------------------------------
cat >"$tmp/check.py" <<'PY'
import sys
import warnings
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

warnings.simplefilter("ignore")
d, coadd, template, mode = sys.argv[1:5]
ok = True
with fits.open(coadd) as h:
    img = h["IMAGE"].data.astype(float); var = h["VARIANCE"].data.astype(float); mask = h["MASK"].data
    hdr, prim = h["IMAGE"].header, h[0].header
    nodata = 1 << hdr.get("MP_NO_DATA", h["MASK"].header["MP_NO_DATA"])
tpl = fits.getheader(template) if template.endswith(".fits") else fits.Header.fromtextfile(template)
nx, ny = tpl["NAXIS1"], tpl["NAXIS2"]
if img.shape != (ny, nx):
    print(f"shape {img.shape} != template {(ny, nx)}"); ok = False
for k in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
    if abs(hdr[k] - tpl[k]) > 1e-9 * max(1, abs(tpl[k])):
        print(f"{k}: coadd {hdr[k]} template {tpl[k]}"); ok = False
sra, sdec, flux = np.loadtxt(f"{d}/truth.txt", unpack=True)
x, y = WCS(hdr).wcs_world2pix(sra, sdec, 0)
yy, xx = np.mgrid[0:ny, 0:nx]
ratios = []
for xi, yi, f in zip(x, y, flux):
    if not (8 <= xi <= nx - 9 and 8 <= yi <= ny - 9):
        continue
    r = np.hypot(xx - xi, yy - yi)
    ap = r <= 7.0
    if (mask[ap] & nodata).any() or not np.isfinite(img[ap]).all():
        continue
    ratios.append(img[ap].sum() / f)
ratios = np.array(ratios)
med = np.median(ratios) if len(ratios) else np.nan
print(f"{mode}: {len(ratios)} stars, aperture flux / truth median {med:.5f}, worst {np.max(np.abs(ratios - 1)):.4f}")
if len(ratios) < 20 or not abs(med - 1) < 0.005 or not np.all(np.abs(ratios - 1) < 0.03):
    ok = False
# Noise against the variance plane, away from stars.
far = np.ones_like(img, bool)
for xi, yi in zip(x, y):
    far &= np.hypot(xx - xi, yy - yi) > 10
sel = far & ((mask & nodata) == 0) & np.isfinite(img)
chi = img[sel] / np.sqrt(var[sel])
chi = chi[np.abs(chi) < 5]
print(f"{mode}: std of IMAGE / sqrt(VARIANCE) away from stars {np.std(chi):.3f} over {sel.sum()} px")
# Warping correlates pixels; the per-pixel variance is exact (stages/coadd/Warper.h), so ~1.
if sel.sum() < 2000 or not 0.9 < np.std(chi) < 1.1:
    ok = False
if mode == "calexp":
    if prim.get("BUNIT") != "nJy":
        print("BUNIT", prim.get("BUNIT")); ok = False
    # Star 0 lies under the BAD box of calexp0: its flux comes from calexp1 alone.
    r0 = np.hypot(xx - x[0], yy - y[0]) <= 7.0
    f0 = img[r0].sum() / flux[0]
    print(f"calexp: star 0 (under a BAD box in one input) flux / truth {f0:.4f}")
    if not abs(f0 - 1) < 0.01:
        ok = False
sys.exit(0 if ok else 1)
PY

for seed in 1 2 3; do
  d="$tmp/s$seed"; mkdir -p "$d"
  "$py" "$tmp/make.py" "$d" "$seed" || { bad "synthesis seed $seed"; continue; }
  plain=("$d/img0.fits" "$d/img1.fits" "$d/img2.fits")
  # Noise estimated from each image (img1's weight map is used below).
  out="$("$drp" coadd-images "${plain[@]}" --template "$d/grid.head" --out "$d/head.fits" 2>&1)" \
    || bad "seed $seed: coadd-images with a .head template: $out"
  grep -q "^coadd-images: 3 of 3 inputs coadded .* onto 170x160" <<<"$out" || bad "seed $seed: summary: $out"
  [ "$seed" = 1 ] && echo "$out"
  "$py" "$tmp/check.py" "$d" "$d/head.fits" "$d/grid.head" plain || bad "seed $seed: plain-image coadd checks"
  out="$("$drp" coadd-images "$d/calexp0.fits" "$d/calexp1.fits" --template "$d/grid.head" --combine weighted \
    --out "$d/calexp.fits" 2>&1)" || bad "seed $seed: calexp inputs: $out"
  "$py" "$tmp/check.py" "$d" "$d/calexp.fits" "$d/grid.head" calexp || bad "seed $seed: calexp coadd checks"
done

d="$tmp/s1"
plain=("$d/img0.fits" "$d/img1.fits" "$d/img2.fits")
# The same grid from a FITS template: identical pixels.
out="$("$drp" coadd-images "${plain[@]}" --template "$d/grid.fits" --out "$d/fits.fits" 2>&1)" \
  || bad "seed 1: coadd-images with a FITS template: $out"
"$py" - "$d/head.fits" "$d/fits.fits" <<'PY' || bad "seed 1: .head and FITS templates give different coadds"
import sys, numpy as np
from astropy.io import fits
a, b = (fits.getdata(p, "IMAGE") for p in sys.argv[1:3])
sys.exit(0 if np.array_equal(a, b, equal_nan=True) else 1)
PY
# A weight map for img1 only ('-': estimate the noise of the others). (--weight-suffix: see the errors below.)
out="$("$drp" coadd-images "${plain[@]}" --weight - --weight "$d/img1.weight.fits" --weight - --template "$d/grid.head" \
  --out "$d/w.fits" 2>&1)" || bad "seed 1: --weight: $out"
"$py" "$tmp/check.py" "$d" "$d/w.fits" "$d/grid.head" weight || bad "seed 1: coadd checks with a weight map"
# --center/--size/--pixel-scale.
read -r ra dec _ < <(head -1 "$d/truth.txt")
out="$("$drp" coadd-images "$d/img0.fits" "$d/img1.fits" --center "$ra,$dec" --size 101,77 --pixel-scale 0.3 \
  --out "$d/cs.fits" 2>&1)" || bad "--center/--size: $out"
"$py" -c "
import sys; from astropy.io import fits
h = fits.getheader('$d/cs.fits', 'IMAGE'); s = abs(h['CD2_2']) * 3600
sys.exit(0 if (h['NAXIS1'], h['NAXIS2']) == (101, 77) and abs(s - 0.3) < 1e-9 and abs(h['CRPIX1'] - 51) < 1e-9 else 1)" \
  || bad "--center/--size grid"
# Automatic grid (no grid options): covers every input.
out="$("$drp" coadd-images "$d/img0.fits" "$d/img2.fits" --out "$d/auto.fits" 2>&1)" || bad "automatic grid: $out"
grep -q "(automatic), coverage" <<<"$out" || bad "automatic grid summary: $out"

# Bad inputs: nonzero exit and the file named in the message.
expect_error() {  # description file-to-name args...
  local what="$1" name="$2"; shift 2
  local o
  if o="$("$drp" coadd-images "$@" 2>&1)"; then bad "$what: exit 0"$'\n'"$o"; return; fi
  grep -qF -- "$name" <<<"$o" || bad "$what: message does not name $name"$'\n'"$o"
  echo "ok ($what): $(tail -1 <<<"$o")"
}
expect_error "missing file" "$d/nosuch.fits" "$d/img0.fits" "$d/nosuch.fits" --template "$d/grid.head" --out "$d/x.fits"
expect_error "no WCS" "$d/nowcs.fits" "$d/img0.fits" "$d/nowcs.fits" --template "$d/grid.head" --out "$d/x.fits"
expect_error "truncated FITS" "$d/truncated.fits" "$d/truncated.fits" "$d/img0.fits" --template "$d/grid.head" --out "$d/x.fits"
expect_error "template without WCS" "$d/nowcs.head" "$d/img0.fits" --template "$d/nowcs.head" --out "$d/x.fits"
expect_error "missing weight" "$d/img0.weight.fits" "$d/img0.fits" --weight-suffix .weight.fits --template "$d/grid.head" --out "$d/x.fits"
[ -e "$d/x.fits" ] && bad "a failed run left $d/x.fits"
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
