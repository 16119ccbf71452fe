// Commands for a user's own images, as SExtractor and SCAMP serve them:
//   drp measure-image IMAGE.fits [--hdu N] [--weight W.fits] --out CAT.h5 [--psf-out PSF.fits [--psf-grid N]]
//   drp calibrate-image IMAGE.fits --refcat REF.fits --out WCS.fits
// Both print a one-line summary (sources found, fit residual, time).
// And, to compare PSF models with other tools (benchmarks/peers/psfex_vs_drp.sh):
//   drp export-psf CALEXP.fits [--truth TRUTH.h5] --out PSF.fits [--grid N] [--stamp S]
// writes the calexp's PSF (or, with --truth, the simulator's true PSF from a truthSources table) on a grid.
//
// PSF grid file (export-psf and measure-image --psf-out), readable by astropy:
//   HDU 0  no data; PSFTYPE, GRIDN = N, STAMP = S, BBOX0X/BBOX0Y/BBOXW/BBOXH (the detector box the grid spans)
//   HDU 1  EXTNAME='STAMPS' double image S wide and N*N*S high: stamp k (rows k*S .. k*S+S-1) is
//          Psf::computeKernelImage at position k of the table (the PSF centred on pixel (S/2, S/2) of the
//          stamp, 0-based, summing to 1 before any crop to S), zero-padded or cropped about its centre
//   HDU 2  EXTNAME='POSITIONS' table, N*N rows (k = j*N + i): x, y (parent pixel frame, pixel centres at
//          integers; cell centres of an N x N grid over the box), ixx, iyy, ixy (Psf::computeShape,
//          unweighted moments of the full kernel, pixels^2), kernelSize (side of the full kernel)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <malloc.h>

#include "core/Error.h"
#include "core/HugePages.h"
#include "core/Log.h"
#include "drivers/sim/Simulator.h"
#include "core/Statistics.h"
#include "drivers/Cli.h"
#include "drivers/singlevisit/SingleVisit.h"
#include "io/AtomicFile.h"
#include "io/ExposureFits.h"
#include "io/FitsFile.h"
#include "io/Hdf5Catalog.h"

namespace po = boost::program_options;

namespace drp {
namespace {

WeightKind weightKind(const std::string& s) {
    if (s == "inverse-variance" || s == "ivar" || s == "weight") return WeightKind::InverseVariance;
    if (s == "variance") return WeightKind::Variance;
    if (s == "sigma" || s == "rms") return WeightKind::Sigma;
    throw ConfigError("--weight-type must be inverse-variance, variance or sigma, not '" + s + "'");
}

/// The memory set-up of a one-image process (measure-image, calibrate-image), before any plane is allocated:
/// huge pages if asked for (core/HugePages.h), and glibc keeping freed large buffers (the noise sample, the
/// measurement's stamps) in its heap for the next ones instead of unmapping them, so they are not faulted in
/// again (on the 4072x4000 bench calexp: 39.5k -> 36.1k page faults, peak +1.4 MB; it was 90.0k -> 70.6k
/// when the detection still made a full-size significance image per pass).
void configureOneImageProcessMemory(const po::variables_map& vm) {
    setTransparentHugePages(vm["huge-pages"].as<bool>());
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/// Read an image (and optional weight) as an Exposure; without a weight map, the noise is estimated
/// from the image itself (clipped standard deviation of the pixel values, as SExtractor's background rms).
Exposure loadImage(const po::variables_map& vm, double* pixelScaleArcsec) {
    const std::string image = vm["image"].as<std::string>();
    const int hdu = vm["hdu"].as<int>();
    const bool haveWeight = vm.count("weight") > 0;
    Exposure exp;
    if (haveWeight) {
        exp = readImageAsExposure(image, hdu, vm["weight"].as<std::string>(), vm["weight-hdu"].as<int>(),
                                  weightKind(vm["weight-type"].as<std::string>()));
        if (exp.mask().countBits(exp.mask().planeBitMask("NO_DATA")) == exp.bbox().area()) {
            throw InvalidInputError("no usable pixels (all NaN or zero weight)", image);
        }
    } else {
        weightKind(vm["weight-type"].as<std::string>());  // a bad --weight-type is an error either way
        FitsImage in = readImage(image, hdu);
        // The clipped standard deviation of a regular sample of about 2^20 pixels (every k-th pixel of
        // every k-th row): its relative precision, ~1/sqrt(2n) = 7e-4, is far below the noise model's
        // needs, and it costs a sixteenth of the whole 16 Mpix image.
        StatisticsControl ctrl;
        ctrl.properties = kStatClipped;
        const ImageF& im = in.image;
        const int k = std::max(1, int(std::sqrt(double(im.width()) * im.height() / double(1 << 20))));
        ImageF sample(Box2I({0, 0}, (im.width() + k - 1) / k, (im.height() + k - 1) / k), kNoFill);  // all set below
        for (int y = 0; y < sample.height(); ++y) {
            const float* r = im.row(y * k);
            float* s = sample.row(y);
            for (int x = 0; x < sample.width(); ++x) s[x] = r[std::size_t(x) * std::size_t(k)];
        }
        Statistics st = makeStatistics(sample, ctrl);
        if (!(st.clippedStdev > 0)) throw InvalidInputError("cannot estimate the noise: the image is constant or empty", image);
        // One pass builds the variance (uniform where the pixel is finite, +inf elsewhere; its pages share the
        // one value until written, core/Image.h SharedFill: no 65 MB plane of one value is filled) and the mask
        // (NO_DATA exactly on the non-finite pixels).
        std::int64_t finite = 0;
        exp = imageAsExposure(std::move(in), float(st.clippedStdev * st.clippedStdev), &finite);
        DRP_LOG_VERBOSE("measure-image", "no weight map: noise estimated as " << st.clippedStdev << " per pixel");
        if (finite == 0) throw InvalidInputError("no usable pixels (all NaN or zero weight)", image);
    }
    if (vm.count("pixel-scale")) {
        *pixelScaleArcsec = vm["pixel-scale"].as<double>();
    } else if (exp.hasWcs()) {
        *pixelScaleArcsec = exp.wcs()->pixelScale({exp.bbox().minX() + 0.5 * exp.width(), exp.bbox().minY() + 0.5 * exp.height()})
                                .asArcseconds();
    } else {
        *pixelScaleArcsec = 0.2;
        DRP_LOG_WARN("measure-image", "no WCS and no --pixel-scale: assuming 0.2 arcsec/pixel for the seeing guess");
    }
    return exp;
}

/// Write `psf` on an n x n grid of cell centres over `bbox` in the layout of the header comment. stamp <= 0:
/// the largest kernel size over the grid.
void writePsfGrid(const Psf& psf, const Box2I& bbox, int n, int stamp, const std::string& path) {
    if (n < 1 || n > 100) throw ConfigError("the PSF grid must be 1..100 positions a side, not " + std::to_string(n));
    if (stamp > 0 && stamp % 2 == 0) throw ConfigError("--stamp must be odd, not " + std::to_string(stamp));
    if (bbox.empty()) throw InvalidInputError("the PSF grid needs a non-empty box");
    const int count = n * n;
    std::vector<double> xs, ys, ixx, iyy, ixy, ksize;
    std::vector<Image<double>> kernels;
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < n; ++i) {
            Point2D p{bbox.minX() + (i + 0.5) * bbox.width() / n - 0.5, bbox.minY() + (j + 0.5) * bbox.height() / n - 0.5};
            kernels.push_back(psf.computeKernelImage(p));
            PsfShape sh = psf.computeShape(p);
            xs.push_back(p.x);
            ys.push_back(p.y);
            ixx.push_back(sh.ixx);
            iyy.push_back(sh.iyy);
            ixy.push_back(sh.ixy);
            ksize.push_back(double(std::max(kernels.back().width(), kernels.back().height())));
        }
    if (stamp <= 0) stamp = int(*std::max_element(ksize.begin(), ksize.end())) | 1;
    Image<double> stamps(stamp, stamp * count, 0.0);
    const int half = stamp / 2;
    for (int k = 0; k < count; ++k) {
        const Image<double>& kern = kernels[std::size_t(k)];
        // Kernel pixel (x, y) is at offset (x + xy0.x, y + xy0.y) from the PSF centre.
        for (int y = 0; y < kern.height(); ++y)
            for (int x = 0; x < kern.width(); ++x) {
                int sx = half + x + kern.xy0().x, sy = half + y + kern.xy0().y;
                if (sx >= 0 && sx < stamp && sy >= 0 && sy < stamp) stamps(sx, k * stamp + sy) = kern(x, y);
            }
    }
    AtomicFile file(path);
    {
        FitsFile f(file.tempPath(), FitsFile::Mode::Create);
        PropertyList md;
        md.set("PSFTYPE", psf.typeName(), "drp PSF type");
        md.set("GRIDN", n, "positions per side of the grid");
        md.set("STAMP", stamp, "side of each stamp (pixels)");
        md.set("BBOX0X", bbox.minX(), "box the grid spans: min x");
        md.set("BBOX0Y", bbox.minY(), "box the grid spans: min y");
        md.set("BBOXW", bbox.width(), "box width");
        md.set("BBOXH", bbox.height(), "box height");
        f.writeEmptyHdu({}, md);
        f.writeImage(stamps, "STAMPS");
        f.createTable({{"x", "D", "pixel"}, {"y", "D", "pixel"}, {"ixx", "D", "pixel**2"}, {"iyy", "D", "pixel**2"},
                       {"ixy", "D", "pixel**2"}, {"kernelSize", "D", "pixel"}},
                      count, "POSITIONS");
        f.writeColumn<double>("x", xs);
        f.writeColumn<double>("y", ys);
        f.writeColumn<double>("ixx", ixx);
        f.writeColumn<double>("iyy", iyy);
        f.writeColumn<double>("ixy", ixy);
        f.writeColumn<double>("kernelSize", ksize);
        f.close();
    }
    file.commit();
}

/// The simulator's true PSF from the metadata of a truthSources table (drivers/sim/Simulator.cpp): a MoffatPsf
/// over `bbox` (the detector box).
std::shared_ptr<const Psf> truthPsf(const std::string& truthPath, const Box2I& bbox) {
    Table truth = readCatalog(truthPath, "sources");
    auto psf = truePsfFromMetadata(truth.metadata(), bbox);
    if (!psf)
        throw InvalidInputError("no true Moffat PSF (PSFTYPE, PSFBETA, PSFFWHMn, PSFE1_n, PSFE2_n) in the metadata",
                                truthPath);
    return psf;
}

int runExportPsf(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    const std::string image = vm["image"].as<std::string>();
    ExposureReadOptions opts;
    opts.requirePsf = vm.count("truth") == 0;
    Exposure exp = readExposure(image, opts);
    std::shared_ptr<const Psf> psf = vm.count("truth") ? truthPsf(vm["truth"].as<std::string>(), exp.bbox()) : exp.psf();
    const std::string out = vm["out"].as<std::string>();
    const int n = vm["grid"].as<int>();
    writePsfGrid(*psf, exp.bbox(), n, vm["stamp"].as<int>(), out);
    PsfShape c = psf->computeShape({exp.bbox().minX() + 0.5 * (exp.width() - 1), exp.bbox().minY() + 0.5 * (exp.height() - 1)});
    std::printf("export-psf: %s PSF (%s) at %d x %d positions over %dx%d, T = Ixx + Iyy = %.4f px^2 at the centre, "
                "written to %s\n",
                vm.count("truth") ? "true" : "model", psf->typeName().c_str(), n, n, exp.width(), exp.height(),
                c.ixx + c.iyy, out.c_str());
    return 0;
}

void addImageOptions(po::options_description& d) {
    d.add_options()("image", po::value<std::string>()->required(), "FITS image (any BITPIX)")(
        "hdu", po::value<int>()->default_value(-1), "HDU index (0-based; -1: the first 2-d image)")(
        "weight", po::value<std::string>(), "weight/variance/sigma map (default: estimate the noise)")(
        "weight-hdu", po::value<int>()->default_value(-1), "HDU of the weight map")(
        "weight-type", po::value<std::string>()->default_value("inverse-variance"),
        "inverse-variance, variance or sigma")("pixel-scale", po::value<double>(),
                                                "arcsec/pixel when the image has no WCS")(
        "seeing", po::value<double>()->default_value(1.0), "seeing guess, arcsec (FWHM)")(
        "huge-pages", po::bool_switch(),
        "put full-size planes on transparent huge pages (faster on bare metal; see core/HugePages.h)");
}

int runMeasureImage(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    auto t0 = std::chrono::steady_clock::now();
    double scale = 0.2;
    configureOneImageProcessMemory(vm);
    Exposure exp = loadImage(vm, &scale);
    SingleVisitConfig cfg;
    cfg.initialPsfFwhmArcsec = vm["seeing"].as<double>();
    SingleVisitResult res = characterizeAndMeasure(std::move(exp), 0, cfg, scale);
    const std::string out = vm["out"].as<std::string>();
    writeCatalog(out, "src", res.sources);
    if (vm.count("psf-out")) {
        if (!res.calexp.hasPsf()) throw LogicError("measure-image: no PSF to export");
        writePsfGrid(*res.calexp.psf(), res.calexp.bbox(), vm["psf-grid"].as<int>(), 0, vm["psf-out"].as<std::string>());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("measure-image: %zu sources, PSF size (moments determinant radius) %.2f px from %d stars "
                "(reserved dT/T %.1e), written to %s in %.2f s\n",
                res.sources.size(), res.summary.getDouble("PSFSIGMA", NAN), res.psf.nUsed,
                res.psf.reservedMedianSizeResidual, out.c_str(), secs);
    return 0;
}

int runCalibrateImage(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    auto t0 = std::chrono::steady_clock::now();
    double scale = 0.2;
    configureOneImageProcessMemory(vm);
    Exposure exp = loadImage(vm, &scale);
    if (!exp.hasWcs()) throw InvalidInputError("calibrate-image needs a header WCS to start from", vm["image"].as<std::string>());
    SingleVisitConfig cfg;
    cfg.initialPsfFwhmArcsec = vm["seeing"].as<double>();
    SingleVisitResult res = characterizeAndMeasure(exp, 0, cfg, scale);

    // The reference catalog: a FITS binary table with ra, dec (deg) and magnitude columns.
    const std::string refPath = vm["refcat"].as<std::string>();
    FitsFile ref(refPath, FitsFile::Mode::Read);
    int tableHdu = -1;
    for (int h = 0; h < ref.numHdus() && tableHdu < 0; ++h) {
        ref.moveToHdu(h);
        if (ref.isTableHdu()) tableHdu = h;
    }
    if (tableHdu < 0) throw NotFoundError("no binary table in the reference catalog", refPath);
    auto ra = ref.readColumn<double>(vm["ra-col"].as<std::string>());
    auto dec = ref.readColumn<double>(vm["dec-col"].as<std::string>());
    auto mag = ref.readColumn<double>(vm["mag-col"].as<std::string>());
    std::vector<AstrometryRef> refs;
    for (std::size_t i = 0; i < ra.size(); ++i)
        if (std::isfinite(ra[i]) && std::isfinite(dec[i])) refs.push_back({SpherePoint::fromDegrees(ra[i], dec[i]), 10.0, mag[i]});

    const Table& src = res.sources;
    auto x = src.column<double>("x"), y = src.column<double>("y"), xe = src.column<double>("xErr"),
         ye = src.column<double>("yErr"), f = src.column<double>("psfFlux"), fe = src.column<double>("psfFluxErr");
    std::vector<AstrometrySource> sources;
    for (std::size_t i = 0; i < src.size(); ++i)
        if (f[i] / fe[i] > 10 && std::isfinite(x[i]) && std::isfinite(xe[i])) sources.push_back({{x[i], y[i]}, xe[i], ye[i], f[i]});
    AstrometryConfig acfg = cfg.astrometry;
    acfg.maxOffsetArcsec = vm["max-offset"].as<double>();
    AstrometryResult fit = fitAstrometry(sources, refs, *exp.wcs(), exp.bbox(), acfg);

    // Write the WCS as a header-only FITS file (like SCAMP's .head, but FITS).
    const std::string out = vm["out"].as<std::string>();
    AtomicFile file(out);
    {
        FitsFile f2(file.tempPath(), FitsFile::Mode::Create);
        PropertyList md = fit.wcs->toFitsMetadata(exp.xy0());
        md.set("ASTRMS", fit.rmsResidualMas, "astrometric rms residual, mas");
        md.set("ASTNMTCH", fit.nMatches, "matched reference stars");
        f2.writeEmptyHdu({}, md);
        f2.close();
    }
    file.commit();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("calibrate-image: %zu sources, %d matched to %zu reference stars, residual rms %.1f mas "
                "(median %.1f mas), SIP order %d, written to %s in %.2f s\n",
                src.size(), fit.nMatches, refs.size(), fit.rmsResidualMas, fit.medianResidualMas, fit.sipOrder,
                out.c_str(), secs);
    return 0;
}

}  // namespace

void registerImageCommands() {
    registerCommand({"measure-image",
                     "background, detection, PSF and measurement on any calibrated image (like SExtractor)",
                     [](po::options_description& d) {
                         addImageOptions(d);
                         d.add_options()("out", po::value<std::string>()->required(), "output HDF5 catalog")(
                             "psf-out", po::value<std::string>(),
                             "also write the fitted PSF model on a grid (FITS, layout of drp export-psf)")(
                             "psf-grid", po::value<int>()->default_value(5), "positions per side of the --psf-out grid");
                     },
                     [](po::positional_options_description& p) { p.add("image", 1); }, runMeasureImage});
    registerCommand({"calibrate-image", "astrometric solution of an image against a reference catalog (like SCAMP)",
                     [](po::options_description& d) {
                         addImageOptions(d);
                         d.add_options()("refcat", po::value<std::string>()->required(), "reference catalog FITS table")(
                             "ra-col", po::value<std::string>()->default_value("ra"), "right ascension column (deg)")(
                             "dec-col", po::value<std::string>()->default_value("dec"), "declination column (deg)")(
                             "mag-col", po::value<std::string>()->default_value("mag"), "magnitude column")(
                             "max-offset", po::value<double>()->default_value(90.0),
                             "largest header-WCS error searched, arcsec")(
                             "out", po::value<std::string>()->required(), "output FITS header with the fitted WCS");
                     },
                     [](po::positional_options_description& p) { p.add("image", 1); }, runCalibrateImage});
    registerCommand({"export-psf",
                     "a calexp's PSF model (or the simulator's true PSF) as images on a grid of positions (FITS)",
                     [](po::options_description& d) {
                         d.add_options()("image", po::value<std::string>()->required(), "calexp FITS (with a PSF HDU)")(
                             "truth", po::value<std::string>(),
                             "truthSources HDF5 of the same detector-visit: export the true PSF instead")(
                             "out", po::value<std::string>()->required(), "output FITS")(
                             "grid", po::value<int>()->default_value(5), "positions per side (cell centres)")(
                             "stamp", po::value<int>()->default_value(0), "odd stamp side; 0: the kernel size");
                     },
                     [](po::positional_options_description& p) { p.add("image", 1); }, runExportPsf});
}

}  // namespace drp
