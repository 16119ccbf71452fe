// Commands for a user's own images, as SExtractor and SCAMP serve them:
//   drp measure-image IMAGE.fits [--hdu N] [--weight W.fits] --out CAT.h5
//   drp calibrate-image IMAGE.fits --refcat REF.fits --out WCS.fits
// Both print a one-line summary (sources found, fit residual, time).
#include <chrono>
#include <cstdio>

#include "core/Error.h"
#include "core/Log.h"
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

/// Read an image (and optional weight) as an Exposure; without a weight map, the noise is estimated
/// from the image itself (clipped standard deviation of the pixel values, as SExtractor's background rms).
Exposure loadImage(const po::variables_map& vm, double* pixelScaleArcsec) {
    const std::string image = vm["image"].as<std::string>();
    const int hdu = vm["hdu"].as<int>();
    const bool haveWeight = vm.count("weight") > 0;
    Exposure exp = readImageAsExposure(image, hdu, haveWeight ? vm["weight"].as<std::string>() : std::string(),
                                       haveWeight ? vm["weight-hdu"].as<int>() : -1,
                                       weightKind(vm["weight-type"].as<std::string>()));
    if (!haveWeight) {
        StatisticsControl ctrl;
        Statistics st = makeStatistics(exp.image(), ctrl);
        if (!(st.clippedStdev > 0)) throw InvalidInputError("cannot estimate the noise: the image is constant or empty", image);
        float var = float(st.clippedStdev * st.clippedStdev);
        MaskPixel noData = exp.mask().planeBitMask("NO_DATA");
        for (int y = 0; y < exp.height(); ++y)
            for (int x = 0; x < exp.width(); ++x) {
                bool finite = std::isfinite(exp.image()(x, y));
                exp.variance()(x, y) = finite ? var : std::numeric_limits<float>::infinity();
                if (finite) exp.mask()(x, y) &= ~noData;
            }
        DRP_LOG_VERBOSE("measure-image", "no weight map: noise estimated as " << st.clippedStdev << " per pixel");
    }
    if (exp.mask().countBits(exp.mask().planeBitMask("NO_DATA")) == exp.bbox().area())
        throw InvalidInputError("no usable pixels (all NaN or zero weight)", image);
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

void addImageOptions(po::options_description& d) {
    d.add_options()("image", po::value<std::string>()->required(), "FITS image (any BITPIX)")(
        "hdu", po::value<int>()->default_value(-1), "HDU index (0-based; -1: the first 2-d image)")(
        "weight", po::value<std::string>(), "weight/variance/sigma map (default: estimate the noise)")(
        "weight-hdu", po::value<int>()->default_value(-1), "HDU of the weight map")(
        "weight-type", po::value<std::string>()->default_value("inverse-variance"),
        "inverse-variance, variance or sigma")("pixel-scale", po::value<double>(),
                                                "arcsec/pixel when the image has no WCS")(
        "seeing", po::value<double>()->default_value(1.0), "seeing guess, arcsec (FWHM)");
}

int runMeasureImage(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    auto t0 = std::chrono::steady_clock::now();
    double scale = 0.2;
    Exposure exp = loadImage(vm, &scale);
    SingleVisitConfig cfg;
    cfg.initialPsfFwhmArcsec = vm["seeing"].as<double>();
    SingleVisitResult res = characterizeAndMeasure(std::move(exp), 0, cfg, scale);
    const std::string out = vm["out"].as<std::string>();
    writeCatalog(out, "src", res.sources);
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
                         d.add_options()("out", po::value<std::string>()->required(), "output HDF5 catalog");
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
}

}  // namespace drp
