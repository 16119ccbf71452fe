// `drp assess`: single-visit quality against the simulator's truth, per band — detection
// completeness of isolated point sources at S/N 5, spurious detections, PSF-flux bias and pulls,
// astrometric residuals, zero-point error and PSF model size residuals. Prints a table and, with
// --out, writes it as an HDF5 table.
#include <cmath>
#include <cstdio>
#include <map>

#include "core/Error.h"
#include "core/Statistics.h"
#include "drivers/Cli.h"
#include "io/Hdf5Catalog.h"
#include "io/Repository.h"
#include "sky/SpherePoint.h"

namespace po = boost::program_options;

namespace drp {
namespace {

struct BandStats {
    std::int64_t truthPoint5 = 0, found5 = 0;   // isolated point sources with true S/N >= 5 (and found)
    std::int64_t truthPoint5to6 = 0, found5to6 = 0;
    std::int64_t detections5 = 0, spurious5 = 0;  // detections with S/N >= 5, and those with no truth object
    std::vector<double> fluxRatioBright, pulls, astromMas, dTT;
    int detectors = 0;
};

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

int runAssess(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    Repository repo = Repository::open(vm["repo"].as<std::string>());
    const std::string run = vm["run"].as<std::string>(), truthRun = vm["truth-run"].as<std::string>();
    std::map<std::string, BandStats> bands;
    // Read-noise variance per detector (electrons^2, the amplifiers' mean), from the instrument truth, read
    // once: a faint sky (u band) makes it count in the truth S/N.
    std::map<std::int64_t, double> readVariance;
    for (const auto& inst : repo.query({std::string("truthInstrument"), truthRun, {}})) {
        const Table amps = readCatalog(repo.root() / inst.relativePath, "amplifiers");
        auto rn = amps.column<double>("readNoise");
        double v = 0.0;
        for (double r : rn) v += r * r / double(rn.size());
        readVariance[inst.dataId.getInt(Dimension::Detector)] = v;
    }
    for (const auto& rec : repo.query({std::string("src"), run, {}})) {
        auto truthRec = repo.find("truthSources", truthRun, rec.dataId);
        if (!truthRec) continue;
        Table src = readCatalog(repo.root() / rec.relativePath, "src");
        Table truth = readCatalog(repo.root() / truthRec->relativePath, "sources");
        BandStats& b = bands[rec.dataId.getString(Dimension::Band)];
        b.detectors += 1;
        b.dTT.push_back(src.metadata().getDouble("PSFDTT", NAN));
        const double sigma = src.metadata().getDouble("PSFSIGMA", 2.0);
        // Per-pixel noise variance in electrons: the sky plus the read noise.
        const auto rv = readVariance.find(rec.dataId.getInt(Dimension::Detector));
        const double sky = truth.metadata().getDouble("SKYELEC", 0.0) + (rv == readVariance.end() ? 0.0 : rv->second);
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
            bool isolated = true;
            for (std::size_t k = 0; k < truth.size() && isolated; ++k)
                if (k != i && std::hypot(tx[k] - tx[i], ty[k] - ty[i]) < 5 * sigma && tel[k] > 0.05 * tel[i]) isolated = false;
            if (!isolated) continue;
            double noise = std::sqrt(tel[i] + 4 * M_PI * sigma * sigma * sky);
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
    std::printf("%-4s %5s %12s %12s %10s %12s %10s %11s %11s %10s\n", "band", "dets", "compl(S/N>5)", "compl(5-6)",
                "spurious", "fluxbias(%)", "pull sig", "astrom(mas)", "ZP(mmag)", "PSF dT/T");
    for (auto& [band, b] : bands) {
        Statistics p = makeStatistics(std::span<const double>(b.pulls));
        double ratio = median(b.fluxRatioBright);
        std::printf("%-4s %5d %11.1f%% %11.1f%% %9.2f%% %12.3f %10.3f %11.1f %11.1f %10.1e\n", band.c_str(), b.detectors,
                    100.0 * double(b.found5) / double(std::max<std::int64_t>(b.truthPoint5, 1)),
                    100.0 * double(b.found5to6) / double(std::max<std::int64_t>(b.truthPoint5to6, 1)),
                    100.0 * double(b.spurious5) / double(std::max<std::int64_t>(b.detections5, 1)), 100.0 * (ratio - 1.0),
                    p.madSigma, median(b.astromMas), 1000.0 * 2.5 * std::log10(ratio), median(b.dTT));
    }
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
