// `drp example`: the built-in demonstration of the foundation. It makes a small synthetic calibrated
// exposure (Gaussian-PSF stars on noise, TAN WCS, photometric calibration, visit info), detects and
// measures its sources, writes the exposure, the source catalog and the truth into a data
// repository, reads all three back, checks the round trip is bit-exact and the checksums match, and
// prints a summary of the recovered positions and fluxes against the truth.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include "core/Convolution.h"
#include "core/Error.h"
#include "core/Footprint.h"
#include "core/Kernel.h"
#include "core/Log.h"
#include "core/Statistics.h"
#include "core/Table.h"
#include "drivers/Cli.h"
#include "drivers/DatasetTypes.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/Repository.h"

namespace po = boost::program_options;

namespace drp {
namespace {

struct ExampleConfig {
    int width = 1024;           ///< pixels
    int height = 1024;          ///< pixels
    int stars = 400;            ///< number of injected stars
    double psfSigma = 1.8;      ///< PSF Gaussian sigma, pixels
    double skyAdu = 800.0;      ///< sky level (already subtracted), ADU; sets the noise
    double minFluxAdu = 300.0;  ///< faintest injected star, ADU
    double maxFluxAdu = 3e5;    ///< brightest injected star, ADU
    double zeroPoint = 31.4;    ///< AB magnitude of 1 ADU
    double apertureRadius = 6.0;  ///< measurement aperture radius, pixels
    double detectionSigma = 5.0;  ///< detection threshold in units of the smoothed noise
};

struct Truth {
    std::vector<double> x, y, flux;
};

Exposure makeExposure(const ExampleConfig& cfg, std::uint64_t seed, Truth& truth) {
    std::mt19937_64 rng(seed);
    Exposure exp(cfg.width, cfg.height);
    auto psf = GaussianPsf::make(cfg.psfSigma);
    exp.setPsf(psf);
    exp.setWcs(Wcs::makeTan({cfg.width / 2.0 - 0.5, cfg.height / 2.0 - 0.5}, SpherePoint::fromDegrees(53.1, -28.1),
                            0.2 * arcseconds, 12.0 * degrees));
    exp.setPhotoCalib(std::make_shared<PhotoCalib>(PhotoCalib::fromZeroPoint(cfg.zeroPoint)));
    VisitInfo info;
    info.exposureTimeS = 30.0;
    info.darkTimeS = 30.0;
    info.midExposureMjdTai = 61000.25;
    info.boresightRaDec = SpherePoint::fromDegrees(53.1, -28.1);
    info.boresightRotAngle = 12.0 * degrees;
    info.boresightAirmass = 1.12;
    info.dayObs = 20251231;
    info.band = "r";
    info.physicalFilter = "r_57";
    info.instrument = "Example";
    info.visit = 1;
    exp.setVisitInfo(info);
    exp.setDetector(0);

    // Stars: uniform positions, a power-law flux distribution (more faint than bright).
    std::uniform_real_distribution<double> ux(8.0, cfg.width - 9.0), uy(8.0, cfg.height - 9.0), u01(0.0, 1.0);
    const ImageF& img = exp.image();
    ImageF model(exp.bbox(), 0.0f);
    for (int i = 0; i < cfg.stars; ++i) {
        double x = ux(rng), y = uy(rng);
        double flux = cfg.minFluxAdu * std::pow(cfg.maxFluxAdu / cfg.minFluxAdu, u01(rng) * u01(rng));
        truth.x.push_back(x);
        truth.y.push_back(y);
        truth.flux.push_back(flux);
        ImageD star = psf->computeImage({x, y});
        Box2I box = star.bbox().intersection(model.bbox());
        for (int yy = box.minY(); yy <= box.maxY(); ++yy)
            for (int xx = box.minX(); xx <= box.maxX(); ++xx)
                model.atParent({xx, yy}) += float(flux * star.atParent({xx, yy}));
    }
    // Noise: Gaussian with the Poisson variance of sky + star (gain 1 e-/ADU).
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int y = 0; y < cfg.height; ++y)
        for (int x = 0; x < cfg.width; ++x) {
            double var = cfg.skyAdu + std::max(0.0, double(model(x, y)));
            img(x, y) = float(model(x, y) + std::sqrt(var) * normal(rng));
            exp.variance()(x, y) = float(var);
        }
    // A few bad columns, as a real detector has, flagged BAD and set to NaN.
    for (int y = 0; y < cfg.height; ++y) {
        img(cfg.width / 3, y) = std::numeric_limits<float>::quiet_NaN();
        exp.mask()(cfg.width / 3, y) |= exp.mask().planeBitMask("BAD");
    }
    exp.metadata().set("EXAMPLE", true, "synthetic exposure made by drp example");
    exp.metadata().set("SEED", std::int64_t(seed), "random seed of the example");
    return exp;
}

struct SourceKeys {
    Schema schema;
    Key<std::int64_t> id;
    Key<double> x, y, ra, dec, apFlux, apFluxErr, apInstFlux;
    Key<std::int32_t> area;
    Key<bool> flagEdge, flagBad;
    SourceKeys() {
        id = schema.addField<std::int64_t>("sourceId", "unique source identifier");
        x = schema.addField<double>("x", "centroid x (first moment in the aperture), 0-based parent frame", "pixel");
        y = schema.addField<double>("y", "centroid y (first moment in the aperture), 0-based parent frame", "pixel");
        ra = schema.addField<double>("ra", "ICRS right ascension of the centroid", "deg");
        dec = schema.addField<double>("dec", "ICRS declination of the centroid", "deg");
        apInstFlux = schema.addField<double>("apInstFlux", "circular aperture flux", "adu");
        apFlux = schema.addField<double>("apFlux", "calibrated circular aperture flux", "nJy");
        apFluxErr = schema.addField<double>("apFluxErr", "standard error of apFlux", "nJy");
        area = schema.addField<std::int32_t>("footprintArea", "pixels in the detection footprint", "pixel");
        flagEdge = schema.addField<bool>("flag_edge", "aperture leaves the image");
        flagBad = schema.addField<bool>("flag_bad", "aperture contains BAD or NaN pixels");
    }
};

Table measure(const Exposure& exp, const ExampleConfig& cfg, std::int64_t idBase) {
    // Matched filter: smooth with the PSF, threshold at detectionSigma times the smoothed noise.
    ImageF clean = exp.image().clone();
    for (int y = 0; y < clean.height(); ++y)
        for (int x = 0; x < clean.width(); ++x)
            if (!std::isfinite(clean(x, y))) clean(x, y) = 0.0f;
    Kernel kernel = Kernel::gaussian(cfg.psfSigma);
    ImageF smoothed = convolved(clean, kernel);
    StatisticsControl sctrl;
    Statistics noise = makeStatistics(smoothed, sctrl);
    DetectionConfig dcfg;
    dcfg.threshold = cfg.detectionSigma * noise.clippedStdev + noise.clippedMean;
    dcfg.minPixels = 3;
    dcfg.minPeakSeparation = 2.0 * cfg.psfSigma;
    FootprintSet fps = detectFootprints(smoothed, dcfg);

    SourceKeys k;
    Table table(k.schema);
    SpanSet aperture = SpanSet::fromEllipse({0.0, 0.0}, cfg.apertureRadius, cfg.apertureRadius);
    MaskPixel bad = exp.mask().planeBitMask("BAD");
    // Every peak is measured as a source (no deblending yet: neighbours' light is not removed).
    for (std::size_t f = 0; f < fps.size(); ++f)
      for (const PeakRecord& p : fps[f].peaks()) {
        // Centroid: Gaussian-weighted first moments (weight = the PSF's sigma), iterated from the peak;
        // unbiased for a Gaussian PSF, unlike plain moments in a truncated box.
        double cx = p.x, cy = p.y;
        const int hw = int(std::ceil(3.0 * cfg.psfSigma));
        for (int iter = 0; iter < 20; ++iter) {
            double sx = 0, sy = 0, sw = 0;
            int ix = int(std::lround(cx)), iy = int(std::lround(cy));
            for (int dy = -hw; dy <= hw; ++dy)
                for (int dx = -hw; dx <= hw; ++dx) {
                    Point2I q{ix + dx, iy + dy};
                    if (!exp.bbox().contains(q)) continue;
                    double v = exp.image().atParent(q);
                    if (!std::isfinite(v)) continue;
                    double r2 = (q.x - cx) * (q.x - cx) + (q.y - cy) * (q.y - cy);
                    double w = std::exp(-0.5 * r2 / (cfg.psfSigma * cfg.psfSigma)) * v;
                    sx += w * q.x;
                    sy += w * q.y;
                    sw += w;
                }
            if (!(sw > 0)) break;
            double nx = sx / sw, ny = sy / sw;
            // Keep the centroid within 2 pixels of the peak: noise can drag faint sources away.
            if (std::hypot(nx - p.x, ny - p.y) > 2.0) break;
            double shift = std::hypot(nx - cx, ny - cy);
            cx = nx;
            cy = ny;
            if (shift < 1e-4) break;
        }
        SpanSet ap = aperture.shift(int(std::lround(cx)), int(std::lround(cy)));
        bool edge = !exp.bbox().contains(ap.bbox());
        SpanSet inside = ap.clippedTo(exp.bbox());
        double flux = 0, var = 0;
        bool hasBad = false;
        for (const Span& s : inside.spans())
            for (int x = s.x0; x <= s.x1; ++x) {
                Point2I q{x, s.y};
                float v = exp.image().atParent(q);
                if (!std::isfinite(v) || (exp.mask().atParent(q) & bad)) {
                    hasBad = true;
                    continue;
                }
                flux += v;
                var += exp.variance().atParent(q);
            }
        std::size_t row = table.addRow();
        SpherePoint sky = exp.wcs()->pixelToSky({cx, cy});
        auto cal = exp.photoCalib()->instFluxToNanojansky(flux, std::sqrt(var));
        table.at(k.id, row) = idBase + std::int64_t(row);
        table.at(k.x, row) = cx;
        table.at(k.y, row) = cy;
        table.at(k.ra, row) = sky.ra().asDegrees();
        table.at(k.dec, row) = sky.dec().asDegrees();
        table.at(k.apInstFlux, row) = flux;
        table.at(k.apFlux, row) = cal.value;
        table.at(k.apFluxErr, row) = cal.error;
        table.at(k.area, row) = std::int32_t(fps[f].area());
        table.at(k.flagEdge, row) = edge;
        table.at(k.flagBad, row) = hasBad;
      }
    table.metadata().set("DETTHRESH", dcfg.threshold, "detection threshold on the smoothed image (ADU)");
    table.metadata().set("APRADIUS", cfg.apertureRadius, "aperture radius (pixel)");
    return table;
}

Table truthTable(const Truth& t, const PhotoCalib& calib) {
    Schema s;
    auto kx = s.addField<double>("x", "true centroid x, 0-based parent frame", "pixel");
    auto ky = s.addField<double>("y", "true centroid y, 0-based parent frame", "pixel");
    auto kf = s.addField<double>("flux", "true flux", "nJy");
    Table table(s, t.x.size());
    for (std::size_t i = 0; i < t.x.size(); ++i) {
        table.at(kx, i) = t.x[i];
        table.at(ky, i) = t.y[i];
        table.at(kf, i) = calib.instFluxToNanojansky(t.flux[i]);
    }
    return table;
}

double median(std::vector<double> v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

int runExample(const po::variables_map& vm, const Communicator& comm) {
    ExampleConfig cfg;
    cfg.width = vm["width"].as<int>();
    cfg.height = vm["height"].as<int>();
    cfg.stars = vm["stars"].as<int>();
    if (cfg.width < 64 || cfg.height < 64 || cfg.stars < 0)
        throw ConfigError("example needs --width and --height >= 64 and --stars >= 0");
    const std::string run = vm["run"].as<std::string>();
    const std::uint64_t seed = vm["seed"].as<std::uint64_t>();
    if (!comm.isRoot()) return 0;  // the example is serial; other ranks have nothing to do

    auto t0 = std::chrono::steady_clock::now();
    Repository repo = openOrCreateRepository(vm["repo"].as<std::string>());
    DataId dataId{{"instrument", "Example"}, {"band", "r"}, {"visit", std::int64_t(1)}, {"detector", std::int64_t(0)}};
    LogContext ctx(dataId.toString());

    Truth truth;
    Exposure exp = makeExposure(cfg, seed, truth);
    Table src = measure(exp, cfg, std::int64_t(1) << 32);
    Table tru = truthTable(truth, *exp.photoCalib());
    DRP_LOG_INFO("example", "made a " << cfg.width << "x" << cfg.height << " exposure with " << cfg.stars
                                      << " stars; detected " << src.size() << " sources");

    auto recCalexp = repo.put("calexp", run, dataId, [&](const std::filesystem::path& p) { writeExposure(p, exp); });
    auto recSrc = repo.put("src", run, dataId, [&](const std::filesystem::path& p) { writeCatalog(p, "src", src); });
    auto recTruth = repo.put("truth", run, dataId, [&](const std::filesystem::path& p) { writeCatalog(p, "truth", tru); });
    for (const auto* r : {&recCalexp, &recSrc, &recTruth})
        DRP_LOG_VERBOSE("example", "wrote " << r->datasetType << " " << r->relativePath << " (" << r->size
                                            << " bytes, xxh3 " << r->checksum << ")");

    // Read everything back through the repository and check it.
    Exposure back = readExposure(repo.getPath("calexp", run, dataId), {.requireWcs = true, .requirePsf = true});
    Table srcBack = readCatalog(repo.getPath("src", run, dataId), "src");
    bool exposureSame = back.maskedImage().identical(exp.maskedImage()) && *back.wcs() == *exp.wcs() &&
                        back.psf()->equals(*exp.psf());
    bool catalogSame = srcBack.identical(src);
    bool checksumsOk = true;
    for (const auto* r : {&recCalexp, &recSrc, &recTruth}) checksumsOk &= repo.verify(*r) == VerifyStatus::Ok;

    // Match detections to the truth (nearest within 2 pixels) and summarise.
    SourceKeys k;
    auto xs = srcBack.column<double>("x"), ys = srcBack.column<double>("y");
    auto fl = srcBack.column<double>("apFlux");
    auto edge = srcBack.column<bool>("flag_edge"), badf = srcBack.column<bool>("flag_bad");
    std::vector<double> dpos, ratioBright, pull;
    std::size_t matched = 0, brightTotal = 0, brightMatched = 0;
    const double noiseAdu = std::sqrt(cfg.skyAdu);
    double apCorr = 0;  // fraction of a Gaussian PSF inside the aperture
    apCorr = 1.0 - std::exp(-0.5 * cfg.apertureRadius * cfg.apertureRadius / (cfg.psfSigma * cfg.psfSigma));
    auto errs = srcBack.column<double>("apFluxErr");
    for (std::size_t i = 0; i < truth.x.size(); ++i) {
        double best = 4.0;
        std::size_t bj = SIZE_MAX;
        for (std::size_t j = 0; j < srcBack.size(); ++j) {
            double d2 = std::pow(xs[j] - truth.x[i], 2) + std::pow(ys[j] - truth.y[i], 2);
            if (d2 < best) best = d2, bj = j;
        }
        // Optimal (PSF-weighted) S/N of the star against the sky noise.
        double snrTrue = truth.flux[i] / (noiseAdu * std::sqrt(4.0 * M_PI) * cfg.psfSigma);
        // Completeness is counted over isolated stars (no other star within 4 PSF sigmas): blends
        // are the deblender's business, not detection's.
        bool isolated = true;
        for (std::size_t o = 0; o < truth.x.size() && isolated; ++o)
            if (o != i && std::hypot(truth.x[o] - truth.x[i], truth.y[o] - truth.y[i]) < 4.0 * cfg.psfSigma) isolated = false;
        // ... and inside the region where the matched filter is defined (the PSF kernel fits).
        const double margin = std::ceil(4.0 * cfg.psfSigma) + 1.0;
        bool inside = truth.x[i] > margin && truth.y[i] > margin && truth.x[i] < cfg.width - 1 - margin &&
                      truth.y[i] < cfg.height - 1 - margin;
        snrTrue = (isolated && inside) ? snrTrue : 0.0;
        if (snrTrue > 10) ++brightTotal;
        if (bj == SIZE_MAX) continue;
        ++matched;
        if (snrTrue > 10) ++brightMatched;
        if (edge[bj] || badf[bj]) continue;
        double trueNjy = exp.photoCalib()->instFluxToNanojansky(truth.flux[i]) * apCorr;
        double snr = trueNjy / errs[bj];
        if (snr > 50) {
            dpos.push_back(std::sqrt(best) * 0.2 * 1000.0);
            ratioBright.push_back(fl[bj] / trueNjy);
        }
        pull.push_back((fl[bj] - trueNjy) / errs[bj]);
    }
    Statistics pullStats = makeStatistics(std::span<const double>(pull));  // median and MAD resist blends
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::printf("\nExample: one synthetic exposure through the data repository at %s\n", repo.root().c_str());
    std::printf("  dataset   %-8s %s\n", "calexp", recCalexp.relativePath.c_str());
    std::printf("  dataset   %-8s %s\n", "src", recSrc.relativePath.c_str());
    std::printf("  dataset   %-8s %s\n", "truth", recTruth.relativePath.c_str());
    std::printf("  exposure  %dx%d, %zu mask planes, PSF %s sigma %.2f px, WCS centre (%.5f, %.5f) deg, zero point %.2f\n",
                back.width(), back.height(), back.mask().planes().size(), back.psf()->typeName().c_str(),
                back.psf()->computeSigma(), back.wcs()->pixelToSky({cfg.width / 2.0, cfg.height / 2.0}).ra().asDegrees(),
                back.wcs()->pixelToSky({cfg.width / 2.0, cfg.height / 2.0}).dec().asDegrees(),
                back.photoCalib()->zeroPoint());
    std::printf("  sources   %zu detected, %zu of %zu injected stars matched within 2 px; completeness of isolated S/N>10 stars: %.1f%%\n",
                srcBack.size(), matched, truth.x.size(), 100.0 * double(brightMatched) / double(std::max<std::size_t>(brightTotal, 1)));
    std::printf("  accuracy  bright stars (S/N>50): median position error %.1f mas, median flux ratio %.4f\n",
                median(dpos), median(ratioBright));
    std::printf("            aperture-flux pulls over %lld matched stars: median %.2f, MAD sigma %.2f (ideal 0, 1)\n",
                static_cast<long long>(pullStats.count), pullStats.median, pullStats.madSigma);
    std::printf("  checks    exposure round trip %s, catalog round trip %s, checksums %s\n",
                exposureSame ? "bit-exact" : "DIFFERS", catalogSame ? "bit-exact" : "DIFFERS",
                checksumsOk ? "match" : "MISMATCH");
    std::printf("  time      %.2f s\n\n", elapsed);
    return (exposureSame && catalogSame && checksumsOk) ? 0 : 1;
}

}  // namespace

void registerExampleCommand() {
    registerCommand({"example",
                     "write, read back and summarise a synthetic exposure and its catalogs through a repository",
                     [](po::options_description& d) {
                         d.add_options()("repo", po::value<std::string>()->required(), "data repository directory")(
                             "run", po::value<std::string>()->default_value("example"), "run (collection) name")(
                             "seed", po::value<std::uint64_t>()->default_value(1), "random seed")(
                             "width", po::value<int>()->default_value(1024), "image width (pixels)")(
                             "height", po::value<int>()->default_value(1024), "image height (pixels)")(
                             "stars", po::value<int>()->default_value(400), "number of injected stars");
                     },
                     nullptr, runExample});
}

}  // namespace drp
