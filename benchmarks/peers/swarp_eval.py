#!/usr/bin/python3
"""SWarp vs `drp coadd-images` on the same calexps and grid (benchmarks/peers/swarp_vs_drp.sh).

    swarp_eval.py prep WORK CALEXP.fits ...      plain SWarp inputs and the shared output grid
    swarp_eval.py eval WORK TRUTH_DIR TIMES.tsv  compare the coadds; print the table

prep writes, for calexp k (io/ExposureFits layout: IMAGE, MASK, VARIANCE HDUs, PhotoCalib CALIBMN in HDU 0):
  WORK/in_k.fits         the IMAGE plane with the IMAGE HDU's header (TAN-SIP WCS) and FLXSCALE = CALIBMN
                         (nJy per ADU), so SWarp (FSCALE_KEYWORD FLXSCALE) coadds in nJy like drp does;
                         excluded pixels (below) set to 0
  WORK/in_k.weight.fits  1 / VARIANCE (MAP_WEIGHT), 0 where the mask has NO_DATA, BAD, SAT or EDGE (the planes
                         drp's CoaddAssembler excludes) or the variance is not finite and positive
and WORK/coadd.head: the output grid as a text header (SWarp reads it for IMAGEOUT_NAME coadd.fits; drp reads
it with --template): north-up TAN at the median calexp pixel scale, centred on the mean calexp centre, covering
every calexp.

eval reads WORK/drp_*.fits (drp coadds, IMAGE/MASK/VARIANCE HDUs, nJy) and WORK/swarp*.fits (+ .weight.fits) and
reports:
  * pixel agreement over pixels where both coadds have data (drp not NO_DATA, SWarp weight > 0), away from the
    coverage edges: median and robust scatter of (drp - SWarp) / sqrt(drp variance), and the relative
    difference of the summed flux;
  * star fluxes: the simulator's truthSources of every visit (nJy; TRUTH_DIR/**/sources_*.h5) give stars
    (type 0) of constant flux, 18 < mag < 21 (bright, unsaturated), isolated (no other true source within
    12 px brighter than 0.5% of the star), at least 25 px inside the common coverage and with no masked coadd
    pixel within the aperture. Aperture fluxes (radius 6 and 12 px, 5 x 5 sub-pixel sampling, local
    background = median of the 15-20 px annulus) on both coadds: median and robust scatter (1.4826 MAD) of
    drp / SWarp, and of each coadd's flux over the true flux (the 12 px aperture holds ~99% of the Moffat
    PSF: the aperture loss is common to both).
"""
import glob
import os
import sys

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

EXCLUDED = ("NO_DATA", "BAD", "SAT", "EDGE")


def mask_bits(header, names):
    bits = 0
    for n in names:
        key = "MP_" + n
        if key in header:
            bits |= 1 << int(header[key])
    return bits


def write_tpv_head(hdr, path):
    """SWarp 2.41 ignores SIP (A_p_q/B_p_q): give it the same distortion as a TAN + PV (TPV) polynomial of
    order 3 in an external header (SWarp's HEADER_SUFFIX .head overrides the image's keywords). The PV
    polynomial maps the linear intermediate coordinates (x, y) = CD (p - CRPIX) to the distorted ones
    CD (u + f(u, v), v + g(u, v)); for SIP of order <= 3 the fit is exact. Returns the max residual in pixels."""
    cd = np.array([[hdr.get("CD1_1", 0.0), hdr.get("CD1_2", 0.0)], [hdr.get("CD2_1", 0.0), hdr.get("CD2_2", 0.0)]])
    ny, nx = hdr["NAXIS2"], hdr["NAXIS1"]
    u, v = np.meshgrid(np.linspace(-hdr["CRPIX1"], nx - hdr["CRPIX1"] + 1, 41),
                       np.linspace(-hdr["CRPIX2"], ny - hdr["CRPIX2"] + 1, 41))
    u, v = u.ravel(), v.ravel()

    def sip(prefix):
        order = int(hdr.get(f"{prefix}_ORDER", 0))
        out = np.zeros_like(u)
        for p in range(order + 1):
            for q in range(order + 1 - p):
                out += hdr.get(f"{prefix}_{p}_{q}", 0.0) * u**p * v**q
        return out

    f, g = sip("A"), sip("B")
    x, y = cd @ np.stack([u, v])
    X, Y = cd @ np.stack([u + f, v + g])
    t1 = [np.ones_like(x), x, y, np.zeros_like(x), x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3]
    t2 = [np.ones_like(x), y, x, np.zeros_like(x), y * y, y * x, x * x, y**3, y * y * x, y * x * x, x**3]
    cards = [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN")]
    fitted = []
    for axis, terms, target in ((1, t1, X), (2, t2, Y)):
        use = [i for i in range(11) if i != 3]
        m = np.stack([terms[i] for i in use], 1)
        coef, *_ = np.linalg.lstsq(m, target, rcond=None)
        pv = np.zeros(11)
        pv[use] = coef
        fitted.append(m @ coef)
        cards += [(f"PV{axis}_{i}", float(pv[i])) for i in range(11)]
    resid_deg = np.hypot(fitted[0] - X, fitted[1] - Y).max()
    with open(path, "w") as fh:
        for key, val in cards:
            fh.write(str(fits.Card(key, val)) + "\n")
        fh.write("END" + " " * 77 + "\n")
    return resid_deg / np.sqrt(abs(np.linalg.det(cd)))


def prep(work, calexps):
    centres, scales, corners = [], [], []
    for k, path in enumerate(calexps):
        with fits.open(path) as h:
            img = h["IMAGE"].data.astype(np.float32)
            var = h["VARIANCE"].data.astype(np.float32)
            mask = h["MASK"].data
            bad = (mask & mask_bits(h["MASK"].header, EXCLUDED)) != 0
            bad |= ~np.isfinite(var) | ~(var > 0) | ~np.isfinite(img)
            hdr = h["IMAGE"].header.copy()
            scale = h[0].header.get("CALIBMN", 1.0)
        for key in ("EXTNAME", "LTV1", "LTV2"):
            hdr.remove(key, ignore_missing=True)
        hdr = fits.Header([c for c in hdr.cards if not c.keyword.endswith("A") or not c.keyword[:-1] in
                           ("WCSNAME", "CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CUNIT1", "CUNIT2",
                            "CD1_1", "CD1_2", "CD2_1", "CD2_2", "WCSAXES")])
        hdr["FLXSCALE"] = (float(scale), "nJy per ADU (drp PhotoCalib mean)")
        weight = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, var)).astype(np.float32)
        fits.PrimaryHDU(np.where(bad, 0.0, img).astype(np.float32), hdr).writeto(f"{work}/in_{k}.fits", overwrite=True)
        fits.PrimaryHDU(weight).writeto(f"{work}/in_{k}.weight.fits", overwrite=True)
        # One weight per input (drp's default --combine input-weighted): 1 / median variance of the good pixels.
        cw = np.where(bad, 0.0, 1.0 / np.median(var[~bad])).astype(np.float32)
        fits.PrimaryHDU(cw).writeto(f"{work}/in_{k}.iweight.fits", overwrite=True)
        tpv_resid = write_tpv_head(hdr, f"{work}/in_{k}.head")
        w = WCS(hdr)
        ny, nx = img.shape
        c = w.pixel_to_world_values(np.array([(nx - 1) / 2]), np.array([(ny - 1) / 2]))
        centres.append((c[0][0], c[1][0]))
        scales.append(np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix))) * 3600)
        xs = np.concatenate([np.linspace(-0.5, nx - 0.5, 33), np.full(33, nx - 0.5), np.linspace(-0.5, nx - 0.5, 33),
                             np.full(33, -0.5)])
        ys = np.concatenate([np.full(33, -0.5), np.linspace(-0.5, ny - 0.5, 33), np.full(33, ny - 0.5),
                             np.linspace(-0.5, ny - 0.5, 33)])
        corners.append(np.array(w.pixel_to_world_values(xs, ys)).T)
    v = np.array([[np.cos(np.radians(d)) * np.cos(np.radians(r)), np.cos(np.radians(d)) * np.sin(np.radians(r)),
                   np.sin(np.radians(d))] for r, d in centres]).sum(0)
    ra0 = np.degrees(np.arctan2(v[1], v[0])) % 360
    dec0 = np.degrees(np.arcsin(v[2] / np.linalg.norm(v)))
    scale = float(np.median(scales))
    g = WCS(naxis=2)
    g.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    g.wcs.crval = [ra0, dec0]
    g.wcs.crpix = [1.0, 1.0]
    g.wcs.cd = np.array([[-scale / 3600, 0.0], [0.0, scale / 3600]])
    allc = np.concatenate(corners)
    px, py = g.world_to_pixel_values(allc[:, 0], allc[:, 1])
    nx, ny = int(np.ceil(px.max() - px.min())), int(np.ceil(py.max() - py.min()))
    # First pixel centre half a pixel inside the union's lower-left corner (1-based CRPIX).
    crpix = (1.0 - (px.min() + 0.5), 1.0 - (py.min() + 0.5))
    cards = [("NAXIS", 2), ("NAXIS1", nx), ("NAXIS2", ny), ("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"),
             ("CUNIT1", "deg"), ("CUNIT2", "deg"), ("CRVAL1", ra0), ("CRVAL2", dec0), ("CRPIX1", crpix[0] + 1.0),
             ("CRPIX2", crpix[1] + 1.0), ("CD1_1", -scale / 3600), ("CD1_2", 0.0), ("CD2_1", 0.0),
             ("CD2_2", scale / 3600), ("EQUINOX", 2000.0), ("RADESYS", "ICRS")]
    with open(f"{work}/coadd.head", "w") as f:
        for key, val in cards:
            f.write(str(fits.Card(key, val)) + "\n")
        f.write("END" + " " * 77 + "\n")
    print(f"prep: SIP -> TPV external headers for SWarp (in_k.head), max fit residual {tpv_resid:.1e} px")
    print(f"prep: {len(calexps)} calexps -> grid {nx} x {ny} at {scale:.4f}\"/px, centre ({ra0:.5f}, {dec0:.5f})")


def erode(m, n):
    """Pixels whose (2n+1) x (2n+1) neighbourhood lies entirely in the boolean mask m."""
    c = np.pad(m.astype(np.int64), ((n + 1, n), (n + 1, n))).cumsum(0).cumsum(1)
    k = 2 * n + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return m & (s == k * k)


def robust(x):
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan
    m = np.median(x)
    return m, 1.4826 * np.median(np.abs(x - m))


def aperture(img, bad, xs, ys, r):
    """Aperture sums (5x5 sub-pixel sampling) minus annulus median 15-20 px; NaN if a bad pixel is inside r+1."""
    out = np.full(len(xs), np.nan)
    sub = (np.arange(5) + 0.5) / 5 - 0.5
    h = 21
    for k, (x, y) in enumerate(zip(xs, ys)):
        ix, iy = int(round(x)), int(round(y))
        if ix - h < 0 or iy - h < 0 or ix + h >= img.shape[1] or iy + h >= img.shape[0]:
            continue
        st = img[iy - h:iy + h + 1, ix - h:ix + h + 1].astype(float)
        sb = bad[iy - h:iy + h + 1, ix - h:ix + h + 1]
        gy, gx = np.mgrid[-h:h + 1, -h:h + 1]
        dx, dy = gx + ix - x, gy + iy - y
        rr = np.hypot(dx, dy)
        if sb[rr <= r + 1].any():
            continue
        ann = (rr >= 15) & (rr <= 20) & ~sb
        if ann.sum() < 50:
            continue
        bkg = np.median(st[ann])
        frac = np.zeros_like(st)
        for sy in sub:
            for sx in sub:
                frac += np.hypot(dx + sx, dy + sy) <= r
        frac /= 25.0
        out[k] = np.sum((st - bkg) * frac)
    return out


def read_truth(truth_dir):
    """Stars of constant flux: id -> (ra, dec, flux nJy, mag), and every true source for isolation."""
    files = sorted(glob.glob(os.path.join(truth_dir, "**", "sources_*.h5"), recursive=True))
    import h5py
    per = {}
    allsrc = []
    for f in files:
        t = h5py.File(f, "r")["sources"]
        ids, typ, ra, dec, flux, mag = (t[c][:] for c in ("id", "type", "ra", "dec", "flux", "mag"))
        allsrc.append(np.stack([ra, dec, flux], 1))
        for i in range(len(ids)):
            per.setdefault(int(ids[i]), []).append((typ[i], ra[i], dec[i], flux[i], mag[i]))
    stars = []
    for i, rows in per.items():
        rows = np.array(rows, dtype=float)
        if rows[0, 0] != 0 or len(rows) < 2:
            continue
        if np.std(rows[:, 3]) > 1e-4 * np.mean(rows[:, 3]):
            continue
        stars.append((rows[:, 1].mean(), rows[:, 2].mean(), rows[:, 3].mean(), rows[:, 4].mean()))
    allsrc = np.concatenate(allsrc) if allsrc else np.zeros((0, 3))
    return np.array(stars), allsrc, len(files)


# Which SWarp coadd each drp coadd is compared with (same weighting scheme).
PAIRS = {"weighted": "swarp", "plain-inputs": "swarp", "input-weighted": "swarp_inputw"}


def evaluate(work, truth_dir, times_path):
    swarps = {}
    for name in sorted(set(PAIRS.values())):
        if os.path.exists(f"{work}/{name}.fits"):
            with fits.open(f"{work}/{name}.fits") as h, fits.open(f"{work}/{name}.weight.fits") as hw:
                swarps[name] = (h[0].data.astype(float), hw[0].data.astype(float))
    coadds = {}
    for f in sorted(glob.glob(f"{work}/drp_*.fits")):
        with fits.open(f) as h:
            nod = mask_bits(h["MASK"].header, ["NO_DATA"])
            excl = mask_bits(h["MASK"].header, EXCLUDED)
            coadds[os.path.basename(f)[4:-5]] = (h["IMAGE"].data.astype(float), h["VARIANCE"].data.astype(float),
                                                 h["MASK"].data, nod, excl, WCS(h["IMAGE"].header))
    # Timings.
    print("\n== time (fastest of the repeats: wall, user + system CPU) ==")
    wall, cpu = {}, {}
    for line in open(times_path):
        name, w, u, s = line.split()
        wall[name] = min(float(w), wall.get(name, np.inf))
        cpu[name] = min(float(u) + float(s), cpu.get(name, np.inf))
    for name in sorted(wall):
        print(f"  {name:28s} wall {wall[name]:7.2f} s   cpu {cpu[name]:7.2f} s")
    for nt in ("1", "2"):
        a, b = f"drp_weighted_t{nt}", f"swarp_t{nt}"
        if a in wall and b in wall:
            print(f"  drp/SWarp, {nt} thread(s): wall {wall[a] / wall[b]:.3f} (SWarp/drp {wall[b] / wall[a]:.2f}x),"
                  f"  cpu {cpu[a] / cpu[b]:.3f} (SWarp/drp {cpu[b] / cpu[a]:.2f}x)")

    # Pixel agreement.
    print("\n== pixel agreement (pixels where both have data, 30 px inside the common coverage) ==")
    for name, (img, var, mask, nod, excl, w) in coadds.items():
        sname = PAIRS.get(name)
        if sname not in swarps:
            continue
        s_img, s_w = swarps[sname]
        if img.shape != s_img.shape:
            print(f"  {name}: shape {img.shape} != SWarp {s_img.shape}")
            continue
        both = ((mask & nod) == 0) & (s_w > 0) & np.isfinite(img) & (var > 0)
        inner = erode(both, 30)
        d = (img - s_img)[inner] / np.sqrt(var[inner])
        m, sc = robust(d)
        rel = (img[inner].sum() - s_img[inner].sum()) / abs(s_img[inner].sum())
        print(f"  drp {name:15s} - {sname:13s}: {inner.sum():8d} px  median {m:+.4f} sigma  robust scatter {sc:.4f} sigma"
              f"  |d| > 1 sigma {100 * np.mean(np.abs(d) > 1):.2f}%  summed flux {100 * rel:+.3f}%")

    # Star fluxes.
    stars, allsrc, nfiles = read_truth(truth_dir)
    img, var, mask, nod, excl, w = coadds["weighted"] if "weighted" in coadds else next(iter(coadds.values()))
    sx, sy = w.world_to_pixel_values(stars[:, 0], stars[:, 1])
    ax, ay = w.world_to_pixel_values(allsrc[:, 0], allsrc[:, 1])
    sel = (stars[:, 3] > 18) & (stars[:, 3] < 21)
    keep = []
    for k in np.where(sel)[0]:
        r = np.hypot(ax - sx[k], ay - sy[k])
        near = (r > 0.05) & (r < 12) & (allsrc[:, 2] > 0.005 * stars[k, 2])
        if not near.any():
            keep.append(k)
    keep = np.array(keep, dtype=int)
    both = (mask & nod) == 0
    for s_img, s_w in swarps.values():
        both &= s_w > 0
    inner = erode(both, 25)
    ix, iy = np.round(sx[keep]).astype(int), np.round(sy[keep]).astype(int)
    ok = (ix >= 0) & (iy >= 0) & (ix < img.shape[1]) & (iy < img.shape[0])
    keep, ix, iy = keep[ok], ix[ok], iy[ok]
    keep = keep[inner[iy, ix]]
    print(f"\n== star fluxes: {len(keep)} bright (18 < mag < 21) isolated constant stars from {nfiles} truth tables ==")
    rows = []
    for r in (6.0, 12.0):
        res = {}
        for sname, (s_img, s_w) in swarps.items():
            res[sname] = aperture(s_img, ~(s_w > 0), sx[keep], sy[keep], r)
        for name, (img, var, mask, nod, excl, w) in coadds.items():
            res[f"drp_{name}"] = aperture(img, (mask & excl) != 0, sx[keep], sy[keep], r)
        good = np.all([np.isfinite(v) for v in res.values()], axis=0)
        truth = stars[keep, 2]
        for name in coadds:
            if PAIRS.get(name) in res:
                m, sc = robust(res[f"drp_{name}"][good] / res[PAIRS[name]][good])
                rows.append((r, f"drp {name} / {PAIRS[name]}", good.sum(), m, sc))
        for name, f in res.items():
            m, sc = robust(f[good] / truth[good])
            rows.append((r, f"{name} / truth", good.sum(), m, sc))
    print(f"  {'aperture':>8s}  {'ratio':40s} {'stars':>5s} {'median':>8s} {'scatter':>8s}")
    for r, name, n, m, sc in rows:
        print(f"  {r:6.0f}px  {name:40s} {n:5d} {m:8.4f} {100 * sc:7.3f}%")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 5 and sys.argv[1] == "eval":
        evaluate(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
