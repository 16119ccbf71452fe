// `drp assess`: single-visit quality against the simulator's truth, per band — detection
// completeness of isolated point sources at S/N 5, spurious detections, PSF-flux bias and pulls,
// astrometric residuals, zero-point error and PSF model size residuals. Prints a table.
//
// The true S/N of a point source is that of an optimal PSF fit in the calexp: S / sqrt(S + Neff var), with
// S its true photo-electrons, Neff = 1 / sum(p^2) the noise area of the simulator's true PSF p (pixel-
// integrated Moffat, at the detector centre) and var the calexp's per-pixel noise variance near the source
// (median of the variance plane in 64x64-pixel cells), converted to true electrons with the ratio of the
// calexp's background to the true sky at the centre (the master flat is normalised to mean 1, the true
// response is not: ~0.97). That noise is the sky plus the read noise plus the noise of the master
// calibrations (a master flat from one 20000 e- exposure adds (0.7% x sky)^2 per pixel: +50% variance under
// the demo survey's z-band sky, +70% in y). Without a calexp (or true PSF) the sky at the detector's
// corner plus the read noise (and 4 pi sigma^2 of the PSF model) are used. The pull column checks the
// variance plane; "S/N m/t" is the median measured PSF-flux S/N over the true S/N (matched isolated
// point sources, true S/N 5-30): the fraction of the optimal S/N the pipeline reaches. Completeness counts
// the isolated point sources centred on the calexp (the truth also lists sources just off the detector).
//
// PSF model size, two ways: "dT/T res" pools the reserved stars of every detector of the band — the weighted mean
// of their dT/T (each star weighted by 1 / its expected noise, stages/characterize/PsfDeterminer.h; from each
// detector's PSFDTTWM, PSFDTTW, PSFDTTWS) with its standard error, sqrt(chi^2 / (n - 1) / sum of weights) about
// the pooled mean, and the number of stars — the "on reserved stars", free of the few-star noise of one
// detector and of the faintest stars' scatter; the line after the table pools all bands. "dT/T true" is the
// model against the simulator's true PSF, T = Ixx + Iyy of the
// adaptive moments of both kernel images at 3 x 3 positions of each detector: the median over detectors
// of each detector's mean |dT/T| (the model's own accuracy per detector, photon noise of its stars included).
// A last line counts the detectors of each band by PSF model: the visit-level model (PSFVISIT), their own pixel model,
// or a Gaussian of last resort (PSFFALLBK 2).
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/Error.h"
#include "core/Statistics.h"
#include "drivers/Cli.h"
#include "drivers/sim/Simulator.h"
#include "io/ExposureFits.h"
#include "io/ExposureHeader.h"
#include "io/Hdf5Catalog.h"
#include "io/Repository.h"
#include "sky/SpherePoint.h"
#include "stages/characterize/PsfDeterminer.h"
#include "stages/measure/AdaptiveMoments.h"

namespace po = boost::program_options;

namespace drp {
namespace {

/// Reserved stars' dT/T pooled over detectors: sums of weights W, of W x mean and of W x mean^2 plus each
/// detector's weighted sum of squares about its own mean, so chi^2 about the pooled mean follows.
struct ReservedPool {
    double w = 0.0, wm = 0.0, wmm = 0.0, ss = 0.0;
    std::int64_t n = 0;
    void add(std::int64_t stars, double weight, double mean, double sumSquares) {
        n += stars;
        w += weight;
        wm += weight * mean;
        wmm += weight * mean * mean;
        ss += sumSquares;
    }
    void add(const ReservedPool& o) { n += o.n, w += o.w, wm += o.wm, wmm += o.wmm, ss += o.ss; }
    double mean() const { return w > 0.0 ? wm / w : NAN; }
    double error() const {
        if (n < 2 || !(w > 0.0)) return NAN;
        const double chi2 = ss + wmm - wm * wm / w;
        return std::sqrt(std::max(0.0, chi2) / double(n - 1) / w);
    }
    std::string format() const {
        char out[64];
        std::snprintf(out, sizeof out, "%+.1e+-%.0e (%lld)", mean(), error(), static_cast<long long>(n));
        return out;
    }
};

struct BandStats {
    std::int64_t truthPoint5 = 0, found5 = 0;   // isolated point sources with true S/N >= 5 (and found)
    std::int64_t truthPoint5to6 = 0, found5to6 = 0;
    std::int64_t detections5 = 0, spurious5 = 0;  // detections with S/N >= 5, and those with no truth object
    std::vector<double> fluxRatioBright, pulls, astromMas, snrRatio;
    ReservedPool reserved;
    std::vector<double> modelVsTruth, modelVsTruthSigned;  // per detector: mean |dT/T|, mean dT/T of the model against the true PSF
    int detectors = 0;
    int visitPsf = 0, ownPixelPsf = 0, gaussianPsf = 0;  // detectors by PSF model (PSFVISIT, PSFFALLBK)
};

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

/// Median noise variance of a calexp in square cells: at(x, y) looks up the cell of pixel (x, y).
class VarianceMap {
public:
    static constexpr int kCell = 64;
    explicit VarianceMap(const ImageF& variance) : box_(variance.bbox()) {
        nx_ = (variance.width() + kCell - 1) / kCell;
        ny_ = (variance.height() + kCell - 1) / kCell;
        cells_.assign(std::size_t(nx_) * std::size_t(ny_), NAN);
        std::vector<double> v;
        for (int cy = 0; cy < ny_; ++cy)
            for (int cx = 0; cx < nx_; ++cx) {
                v.clear();
                for (int y = cy * kCell; y < std::min(variance.height(), (cy + 1) * kCell); ++y) {
                    const float* r = variance.row(y);
                    for (int x = cx * kCell; x < std::min(variance.width(), (cx + 1) * kCell); ++x)
                        if (std::isfinite(r[x]) && r[x] > 0) v.push_back(r[x]);
                }
                cells_[std::size_t(cy) * std::size_t(nx_) + std::size_t(cx)] = median(v);
            }
    }
    /// Whether the pixel centre (x, y) lies on the image (pixel centres at integers).
    bool contains(double x, double y) const {
        return x >= box_.minX() - 0.5 && x < box_.maxX() + 0.5 && y >= box_.minY() - 0.5 && y < box_.maxY() + 0.5;
    }
    /// NaN outside the image or in a cell without usable pixels.
    double at(double x, double y) const {
        const int cx = int(std::floor((x - box_.minX()) / kCell)), cy = int(std::floor((y - box_.minY()) / kCell));
        if (cx < 0 || cy < 0 || cx >= nx_ || cy >= ny_) return NAN;
        return cells_[std::size_t(cy) * std::size_t(nx_) + std::size_t(cx)];
    }

private:
    Box2I box_;
    int nx_ = 0, ny_ = 0;
    std::vector<double> cells_;
};

/// Mean |dT/T| and mean dT/T of `model` against `truth` (T = Ixx + Iyy of the adaptive moments of their kernel
/// images) at 3 x 3 positions of `bbox`; NaN if either fails everywhere.
std::pair<double, double> modelSizeErrorAgainstTruth(const Psf& model, const Psf& truth, const Box2I& bbox) {
    double sum = 0.0, sumSigned = 0.0;
    int n = 0;
    for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 3; ++i) {
            const Point2D p{bbox.minX() + (i + 0.5) / 3.0 * bbox.width(), bbox.minY() + (j + 0.5) / 3.0 * bbox.height()};
            const double s = truth.computeSigma(p);
            if (!(s > 0)) continue;
            // With the PSF determiner's weight floor: a kernel sharper than a pixel has no plain adaptive fixed point.
            AdaptiveMomentsControl control;
            control.minWeightVariance = std::pow(PsfDeterminerConfig{}.minWeightSigma, 2);
            const AdaptiveMomentsResult mt = computeAdaptiveMoments(truth.computeKernelImage(p), {0.0, 0.0}, SecondMoments::circle(s), control);
            const AdaptiveMomentsResult mm = computeAdaptiveMoments(model.computeKernelImage(p), {0.0, 0.0}, SecondMoments::circle(s), control);
            if (mt.failed() || mm.failed()) continue;
            const double d = mm.moments.trace() / mt.moments.trace() - 1.0;
            sum += std::fabs(d);
            sumSigned += d;
            ++n;
        }
    return n > 0 ? std::pair{sum / n, sumSigned / n} : std::pair{double(NAN), double(NAN)};
}

/// Noise area 1 / sum(p^2) (pixels) of the simulator's true PSF (truePsfFromMetadata) at the centre of `bbox`.
double trueNoiseArea(const Psf& psf, const Box2I& bbox) {
    const Image<double> k = psf.computeKernelImage(
        {bbox.minX() + 0.5 * (bbox.width() - 1), bbox.minY() + 0.5 * (bbox.height() - 1)});
    double s2 = 0.0;
    for (int y = 0; y < k.height(); ++y)
        for (int x = 0; x < k.width(); ++x) s2 += k.row(y)[x] * k.row(y)[x];
    return s2 > 0 ? 1.0 / s2 : NAN;
}

int runAssess(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    Repository repo = Repository::open(vm["repo"].as<std::string>());
    const std::string run = vm["run"].as<std::string>(), truthRun = vm["truth-run"].as<std::string>();
    std::map<std::string, BandStats> bands;
    // Read-noise variance per detector (electrons^2, the amplifiers' mean), from the instrument truth, read
    // once: a faint sky (u band) makes it count in the truth S/N.
    std::map<std::int64_t, double> readNoiseVariance;
    for (const auto& inst : repo.query({std::string("truthInstrument"), truthRun, {}})) {
        const Table amps = readCatalog(repo.root() / inst.relativePath, "amplifiers");
        auto rn = amps.column<double>("readNoise");
        double v = 0.0;
        for (double r : rn) v += r * r / double(rn.size());
        readNoiseVariance[inst.dataId.getInt(Dimension::Detector)] = v;
    }
    for (const auto& rec : repo.query({std::string("src"), run, {}})) {
        auto truthRec = repo.find("truthSources", truthRun, rec.dataId);
        if (!truthRec) continue;
        Table src = readCatalog(repo.root() / rec.relativePath, "src");
        Table truth = readCatalog(repo.root() / truthRec->relativePath, "sources");
        BandStats& b = bands[rec.dataId.getString(Dimension::Band)];
        b.detectors += 1;
        if (src.metadata().getInt("PSFVISIT", 0) == 1)
            b.visitPsf += 1;
        else if (src.metadata().getInt("PSFFALLBK", 0) == 2)
            b.gaussianPsf += 1;
        else
            b.ownPixelPsf += 1;
        {
            const PropertyList& md = src.metadata();
            const std::int64_t n = md.getInt("PSFDTTN", 0);
            const double mean = md.getDouble("PSFDTTWM", NAN), w = md.getDouble("PSFDTTW", 0.0), ss = md.getDouble("PSFDTTWS", 0.0);
            if (n > 0 && std::isfinite(mean) && w > 0.0 && std::isfinite(ss)) b.reserved.add(n, w, mean, ss);
        }
        const double sigma = src.metadata().getDouble("PSFSIGMA", 2.0);
        // Per-pixel noise variance in true electrons: the calexp's variance plane near the source (sky, read
        // noise and master-calibration noise) over the square of the calexp's units per true electron; without
        // a calexp, the sky at the corner plus the read noise.
        const PropertyList& tmd = truth.metadata();
        const auto rv = readNoiseVariance.find(rec.dataId.getInt(Dimension::Detector));
        const double skyFallback = tmd.getDouble("SKYELEC", 0.0) + (rv == readNoiseVariance.end() ? 0.0 : rv->second);
        std::optional<VarianceMap> varMap;
        double noiseArea = 4 * M_PI * sigma * sigma, unitsPerElectron = 1.0;
        if (auto calexpRec = repo.find("calexp", run, rec.dataId)) {
            const ExposureHeader header = readExposureHeader(repo.root() / calexpRec->relativePath);
            const auto truePsf = truePsfFromMetadata(tmd, header.bbox);  // null unless the simulator's Moffat
            if (truePsf && header.psf) {
                const auto [absolute, signedMean] = modelSizeErrorAgainstTruth(*header.psf, *truePsf, header.bbox);
                b.modelVsTruth.push_back(absolute);
                b.modelVsTruthSigned.push_back(signedMean);
            }
            FitsImage v = readImage(repo.root() / calexpRec->relativePath, 3);  // HDU 3 = VARIANCE (io/ExposureFits.h)
            if (v.metadata.getString("EXTNAME", "VARIANCE") != "VARIANCE")
                throw InvalidInputError("assess: HDU 3 of " + calexpRec->relativePath + " is not VARIANCE");
            varMap.emplace(v.image);
            const Box2I box = v.image.bbox();
            const double area = truePsf ? trueNoiseArea(*truePsf, box) : NAN;
            if (std::isfinite(area)) noiseArea = area;
            // BKGMEAN is the background at pixel (int(cx), int(cy)); SKYELEC is the true sky at the box corner.
            const int cx = int(box.minX() + 0.5 * (box.width() - 1)), cy = int(box.minY() + 0.5 * (box.height() - 1));
            const double skyTrue = tmd.getDouble("SKYELEC", NAN) + tmd.getDouble("SKYDX", 0.0) * (cx - box.minX()) +
                                   tmd.getDouble("SKYDY", 0.0) * (cy - box.minY());
            const double m = src.metadata().getDouble("BKGMEAN", NAN) / skyTrue;
            if (std::isfinite(m) && m > 0.5 && m < 2.0) unitsPerElectron = m;
        }
        auto tx = truth.column<double>("x"), ty = truth.column<double>("y"), tel = truth.column<double>("electronsInImage"),
             tflux = truth.column<double>("flux"), tra = truth.column<double>("ra"), tdec = truth.column<double>("dec");
        auto ttype = truth.column<std::int32_t>("type");
        auto sx = src.column<double>("x"), sy = src.column<double>("y"), sf = src.column<double>("psfFlux"),
             sfe = src.column<double>("psfFluxErr"), sra = src.column<double>("ra"), sdec = src.column<double>("dec");
        auto nearest = [&](double x, double y, std::size_t* idx) {
            double best = 1e30;
            for (std::size_t j = 0; j < src.size(); ++j) {
                double d2 = (sx[j] - x) * (sx[j] - x) + (sy[j] - y) * (sy[j] - y);
                if (d2 < best) best = d2, *idx = j;
            }
            return std::sqrt(best);
        };
        // Truth side: isolated point sources (no other object within 5 sigma carrying > 5% of the flux).
        for (std::size_t i = 0; i < truth.size(); ++i) {
            if (!(ttype[i] == 0 || ttype[i] == 2)) continue;
            // The truth lists sources up to 64 px off the detector whose light reaches it: only those centred on it count.
            if (varMap && !varMap->contains(tx[i], ty[i])) continue;
            bool isolated = true;
            for (std::size_t k = 0; k < truth.size() && isolated; ++k)
                if (k != i && std::hypot(tx[k] - tx[i], ty[k] - ty[i]) < 5 * sigma && tel[k] > 0.05 * tel[i]) isolated = false;
            if (!isolated) continue;
            double var = varMap ? varMap->at(tx[i], ty[i]) / (unitsPerElectron * unitsPerElectron) : NAN;
            if (!std::isfinite(var)) var = skyFallback;
            double noise = std::sqrt(tel[i] + noiseArea * var);
            double snr = tel[i] / noise;
            if (snr < 5) continue;
            std::size_t j = 0;
            bool found = nearest(tx[i], ty[i], &j) < 1.5;
            b.truthPoint5 += 1;
            b.found5 += found;
            if (snr < 6) {
                b.truthPoint5to6 += 1;
                b.found5to6 += found;
            }
            if (!found || !(sfe[j] > 0)) continue;
            b.pulls.push_back((sf[j] - tflux[i]) / sfe[j]);
            if (snr < 30) b.snrRatio.push_back(sf[j] / sfe[j] / snr);
            if (snr > 50) {
                b.fluxRatioBright.push_back(sf[j] / tflux[i]);
                b.astromMas.push_back(SpherePoint::fromDegrees(sra[j], sdec[j])
                                          .separation(SpherePoint::fromDegrees(tra[i], tdec[i]))
                                          .asMilliarcseconds());
            }
        }
        // Detection side: S/N >= 5 detections with no truth object within 2 px.
        for (std::size_t j = 0; j < src.size(); ++j) {
            if (!(sf[j] / sfe[j] >= 5)) continue;
            b.detections5 += 1;
            bool any = false;
            for (std::size_t i = 0; i < truth.size() && !any; ++i) any = std::hypot(tx[i] - sx[j], ty[i] - sy[j]) < 2.0;
            b.spurious5 += !any;
        }
    }
    if (bands.empty()) throw NotFoundError("no src datasets in run '" + run + "' with truth in run '" + truthRun + "'");
    std::printf("%-4s %5s %12s %12s %10s %12s %10s %11s %11s %8s %19s %19s\n", "band", "dets", "compl(S/N>5)", "compl(5-6)",
                "spurious", "fluxbias(%)", "pull sig", "astrom(mas)", "ZP(mmag)", "S/N m/t", "dT/T res (n)", "dT/T true (signed)");
    ReservedPool allReserved;
    for (auto& [band, b] : bands) {
        Statistics p = makeStatistics(std::span<const double>(b.pulls));
        double ratio = median(b.fluxRatioBright);
        const std::string res = b.reserved.format();
        allReserved.add(b.reserved);
        char tru[64];
        std::snprintf(tru, sizeof tru, "%.1e (%+.1e)", median(b.modelVsTruth), median(b.modelVsTruthSigned));
        std::printf("%-4s %5d %11.1f%% %11.1f%% %9.2f%% %12.3f %10.3f %11.1f %11.1f %8.3f %19s %19s\n", band.c_str(), b.detectors,
                    100.0 * double(b.found5) / double(std::max<std::int64_t>(b.truthPoint5, 1)),
                    100.0 * double(b.found5to6) / double(std::max<std::int64_t>(b.truthPoint5to6, 1)),
                    100.0 * double(b.spurious5) / double(std::max<std::int64_t>(b.detections5, 1)), 100.0 * (ratio - 1.0),
                    p.madSigma, median(b.astromMas), 1000.0 * 2.5 * std::log10(ratio), median(b.snrRatio), res.c_str(), tru);
    }
    std::printf("# PSF dT/T on reserved stars, all bands: %s\n", allReserved.format().c_str());
    std::printf("# PSF models (detectors: visit-level / own pixel model / Gaussian):");
    for (const auto& [band, b] : bands) std::printf(" %s %d/%d/%d", band.c_str(), b.visitPsf, b.ownPixelPsf, b.gaussianPsf);
    std::printf("\n");
    return 0;
}

}  // namespace

void registerAssessCommand() {
    registerCommand({"assess", "single-visit quality against the simulator's truth, per band",
                     [](po::options_description& d) {
                         d.add_options()("repo", po::value<std::string>()->required(), "data repository")(
                             "run", po::value<std::string>()->default_value("processed"), "run with calexps and src")(
                             "truth-run", po::value<std::string>()->default_value("sim"), "run with the simulator truth");
                     },
                     nullptr, runAssess});
}

}  // namespace drp
