// `drp coadd-images`: warp a user's calibrated images onto one output grid and coadd them (like SWarp),
// with the stages of the campaign's coadd (stages/coadd: Warper, CoaddAssembler, CoaddPsf):
//   drp coadd-images IMG1.fits IMG2.fits ... --out COADD.fits
//       [--template GRID.fits|GRID.head | --center RA,DEC --size NX,NY --pixel-scale ARCSEC]
//       [--hdu N] [--weight W1.fits --weight W2.fits ... | --weight-suffix .weight.fits] [--weight-hdu N]
//       [--weight-type inverse-variance|variance|sigma] [--kernel lanczos3] [--combine input-weighted|weighted]
//       [--reject-artifacts] [--seeing ARCSEC] [--threads N]
// and prints a one-line summary (inputs, output size, coverage, time).
//
// Inputs. A file with IMAGE, MASK and VARIANCE HDUs (a calexp written by this project, io/ExposureFits.h)
// is read whole: its mask excludes pixels (NO_DATA, BAD, SAT, EDGE), its variance weights them, its PSF
// (if any) enters the coadd's CoaddPsf, and its PhotoCalib scales it to nJy. Any other FITS file is read
// as one image HDU (--hdu, default the first 2-d image; any BITPIX) with a TAN or TAN-SIP header WCS;
// its variance comes from a weight map (--weight, one per image in order, '-' for none, or --weight-suffix: the image
// name with its ".fits" replaced by the suffix, SWarp's WEIGHT_SUFFIX convention), else the noise is
// estimated from the image (clipped standard deviation, as measure-image does). --hdu given explicitly
// reads that HDU as a plain image even from a calexp. A plain image is multiplied by its header's FLXSCALE
// (SWarp's FSCALE_KEYWORD; 1 when absent).
//
// Output grid. --template: the WCS and NAXIS1 x NAXIS2 of a FITS file's first HDU with a celestial WCS
// (the image shape, or NAXIS1/NAXIS2 keys of a header-only HDU), or of a SWarp-style text header (".head":
// 80-character cards, one per line or concatenated), so SWarp (given the same text as coadd.head) and drp
// produce exactly the same grid. --center/--size/--pixel-scale: a north-up TAN grid centred (pixel
// ((NX-1)/2, (NY-1)/2), 0-based) on RA,DEC. Neither: a north-up TAN grid at the median input pixel scale
// covering every input (an extra read of each input to find their footprints).
//
// Coadd. Each input is warped (--kernel, flux-conserving: stages/coadd/Warper.h) onto the part of the grid
// its footprint covers and added to a CoaddAssembler (stages/coadd/CoaddAssembler.h): --combine
// input-weighted (default) gives each input one weight, 1 / median variance (unbiased for bright sources);
// weighted gives each pixel 1 / its variance (SWarp's COMBINE_TYPE WEIGHTED). --reject-artifacts adds the
// assembler's artifact rejection (3 passes over the inputs; PSF sigma from the input's PSF, else --seeing).
// Inputs are streamed one at a time (each pass re-reads them): memory is the assembler's per-pixel state
// plus one input and one warp. Inputs that miss the grid are skipped with a warning.
//
// Output FITS (io/ExposureFits.h layout): IMAGE, MASK, VARIANCE on the grid with its WCS (xy0 = 0, so pixel
// (i, j) of the file is pixel (i, j) of the template), and a PSF HDU (CoaddPsf) when every contributing input
// has a PSF. Units: nJy with PhotoCalib(1) (BUNIT = 'nJy') when every input has a PhotoCalib; otherwise the
// inputs' units times their flux scales (BUNIT absent).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/Error.h"
#include "core/Log.h"
#include "core/PhotoCalib.h"
#include "core/Statistics.h"
#include "drivers/Cli.h"
#include "io/ExposureFits.h"
#include "io/FitsFile.h"
#include "io/WcsFits.h"
#include "stages/coadd/CoaddAssembler.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/Warper.h"

namespace po = boost::program_options;

namespace drp {
namespace {

/// The output pixel grid: a WCS and the box [0, nx) x [0, ny).
struct OutputGrid {
    std::shared_ptr<const Wcs> wcs;
    Box2I bbox;
    std::string origin;  ///< for the summary: "template X", "center/size", "automatic"
};

/// How the inputs are read (from the command line).
struct InputOptions {
    int hdu = -1;             ///< -1: calexp layout if present, else the first 2-d image
    int weightHdu = -1;
    WeightKind weightKind = WeightKind::InverseVariance;
    std::string fluxScaleKey = "FLXSCALE";
};

/// One input as the coadd needs it.
struct LoadedInput {
    Exposure exposure;
    double fluxScale = 1.0;  ///< multiplies the image into coadd units
    bool calibrated = false;  ///< fluxScale comes from a PhotoCalib (coadd units nJy)
};

WeightKind weightKind(const std::string& s) {
    if (s == "inverse-variance" || s == "ivar" || s == "weight") return WeightKind::InverseVariance;
    if (s == "variance") return WeightKind::Variance;
    if (s == "sigma" || s == "rms") return WeightKind::Sigma;
    throw ConfigError("--weight-type must be inverse-variance, variance or sigma, not '" + s + "'");
}

/// "a,b" -> two numbers; ConfigError naming the option otherwise.
std::pair<double, double> parsePair(const std::string& s, const std::string& option) {
    std::istringstream in(s);
    double a = NAN, b = NAN;
    char comma = 0;
    in >> a >> comma >> b;
    if (!in || comma != ',' || !std::isfinite(a) || !std::isfinite(b) || !(in >> std::ws).eof())
        throw ConfigError("--" + option + " must be two numbers separated by a comma, not '" + s + "'");
    return {a, b};
}

/// A FITS header given as text (SWarp's .head files): 80-character cards, one per line or concatenated.
/// Values: 'strings', T/F, integers, reals (with E or D exponents); HISTORY/COMMENT/blank cards skipped.
PropertyList parseHeaderText(const std::string& text, const std::string& path) {
    std::vector<std::string> cards;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        for (std::size_t i = 0; i < line.size(); i += 80) cards.push_back(line.substr(i, 80));
    }
    PropertyList md;
    for (std::string card : cards) {
        card.resize(80, ' ');
        std::string key = card.substr(0, 8);
        key.erase(key.find_last_not_of(' ') + 1);
        if (key == "END") break;
        if (key.empty() || card.compare(8, 2, "= ") != 0) continue;
        std::string rest = card.substr(10);
        const std::size_t start = rest.find_first_not_of(' ');
        if (start == std::string::npos) continue;
        if (rest[start] == '\'') {
            std::string value;
            std::size_t i = start + 1;
            for (; i < rest.size(); ++i) {
                if (rest[i] == '\'') {
                    if (i + 1 < rest.size() && rest[i + 1] == '\'') {
                        value += '\'';
                        ++i;
                        continue;
                    }
                    break;
                }
                value += rest[i];
            }
            value.erase(value.find_last_not_of(' ') + 1);
            md.set(key, PropertyList::Value(value));
            continue;
        }
        std::string token = rest.substr(start, rest.find_first_of(" /", start) - start);
        if (token == "T" || token == "F") {
            md.set(key, PropertyList::Value(token == "T"));
            continue;
        }
        std::replace(token.begin(), token.end(), 'D', 'E');
        std::replace(token.begin(), token.end(), 'd', 'e');
        std::size_t used = 0;
        try {
            if (token.find_first_of(".eE") == std::string::npos) {
                const long long v = std::stoll(token, &used);
                if (used == token.size()) md.set(key, PropertyList::Value(std::int64_t(v)));
            } else {
                const double v = std::stod(token, &used);
                if (used == token.size()) md.set(key, PropertyList::Value(v));
            }
        } catch (const std::exception&) {
            throw InvalidInputError("cannot parse the value of " + key + " ('" + token + "')", path);
        }
    }
    if (md.empty()) throw InvalidInputError("no header cards (neither a FITS file nor a text header)", path);
    return md;
}

bool isFitsFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char head[9] = {};
    in.read(head, 9);
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    return in && std::string(head, 9) == "SIMPLE  =" && !ec && size > 0 && size % 2880 == 0;
}

OutputGrid gridFromTemplate(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw NotFoundError("no such template file", path);
    std::string problem;
    if (!isFitsFile(path)) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        const PropertyList md = parseHeaderText(text.str(), path);
        if (!md.has("NAXIS1") || !md.has("NAXIS2")) throw InvalidInputError("the template header has no NAXIS1/NAXIS2", path);
        auto wcs = wcsFromFitsMetadata(md, {0, 0}, &problem);
        if (!wcs) throw InvalidInputError("the template header has no celestial WCS (" + problem + ")", path);
        return {wcs, Box2I({0, 0}, int(md.getInt("NAXIS1")), int(md.getInt("NAXIS2"))), "template " + path};
    }
    FitsFile f(path, FitsFile::Mode::Read);
    for (int h = 0; h < f.numHdus(); ++h) {
        f.moveToHdu(h);
        if (!f.isImageHdu()) continue;
        const PropertyList md = f.readHeader(false);
        auto wcs = wcsFromFitsMetadata(md, {0, 0}, &problem);
        if (!wcs) continue;
        const FitsImageInfo info = f.imageInfo();
        int nx = info.width(), ny = info.height();
        if (nx == 0 && md.has("NAXIS1") && md.has("NAXIS2")) {
            nx = int(md.getInt("NAXIS1"));
            ny = int(md.getInt("NAXIS2"));
        }
        if (nx <= 0 || ny <= 0)
            throw InvalidInputError("HDU " + std::to_string(h) + " of the template has a WCS but no 2-d shape", path);
        return {wcs, Box2I({0, 0}, nx, ny), "template " + path};
    }
    throw InvalidInputError("no HDU of the template has a celestial (TAN/TAN-SIP) WCS" +
                                (problem.empty() ? std::string() : " (" + problem + ")"),
                            path);
}

bool hasCalexpLayout(const std::string& path) {
    FitsFile f(path, FitsFile::Mode::Read);
    return f.hasHdu("IMAGE") && f.hasHdu("MASK") && f.hasHdu("VARIANCE");
}

/// Read one input (see the header comment); errors name the file.
LoadedInput loadInput(const std::string& path, const std::string& weight, const InputOptions& opts) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw NotFoundError("no such input image", path);
    LoadedInput in;
    if (opts.hdu < 0 && hasCalexpLayout(path)) {
        ExposureReadOptions ro;
        ro.requireWcs = true;
        in.exposure = readExposure(path, ro);
        if (in.exposure.hasPhotoCalib()) {
            in.fluxScale = in.exposure.photoCalib()->calibrationMean();
            in.calibrated = true;
        }
        return in;
    }
    in.exposure = readImageAsExposure(path, opts.hdu, weight, weight.empty() ? -1 : opts.weightHdu, opts.weightKind);
    Exposure& exp = in.exposure;
    if (!exp.hasWcs())
        throw InvalidInputError("no celestial WCS (TAN or TAN-SIP) in the image header: cannot place it on the output grid",
                                path);
    if (weight.empty()) {
        StatisticsControl ctrl;
        const Statistics st = makeStatistics(exp.image(), ctrl);
        if (!(st.clippedStdev > 0)) throw InvalidInputError("cannot estimate the noise: the image is constant or empty", path);
        const float var = float(st.clippedStdev * st.clippedStdev);
        const MaskPixel noData = exp.mask().planeBitMask("NO_DATA");
        for (int y = 0; y < exp.height(); ++y)
            for (int x = 0; x < exp.width(); ++x) {
                const bool finite = std::isfinite(exp.image()(x, y));
                exp.maskedImage().variance()(x, y) = finite ? var : std::numeric_limits<float>::infinity();
                if (finite) exp.mask()(x, y) &= MaskPixel(~noData);
            }
        DRP_LOG_VERBOSE("coadd-images", path << ": no weight map, noise estimated as " << st.clippedStdev << " per pixel");
    }
    if (exp.mask().countBits(exp.mask().planeBitMask("NO_DATA")) == exp.bbox().area())
        throw InvalidInputError("no usable pixels (all NaN or zero weight)", path);
    const double scale = exp.metadata().getDouble(opts.fluxScaleKey, 1.0);
    if (!(scale > 0) || !std::isfinite(scale))
        throw InvalidInputError(opts.fluxScaleKey + " = " + std::to_string(scale) + " is not a positive flux scale", path);
    in.fluxScale = scale;
    return in;
}

/// A north-up TAN grid at the median input pixel scale covering every input (reads each input once).
OutputGrid automaticGrid(const std::vector<std::string>& paths, const std::vector<std::string>& weights,
                         const InputOptions& opts) {
    std::vector<std::vector<SpherePoint>> outlines;
    std::vector<double> scales;
    Eigen::Vector3d sum = Eigen::Vector3d::Zero();
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const Exposure exp = loadInput(paths[i], weights[i], opts).exposure;
        const Box2I b = exp.bbox();
        std::vector<Point2D> edge;
        for (int k = 0; k <= 16; ++k) {
            const double fx = b.minX() - 0.5 + b.width() * k / 16.0, fy = b.minY() - 0.5 + b.height() * k / 16.0;
            edge.push_back({fx, b.minY() - 0.5});
            edge.push_back({fx, b.maxY() + 0.5});
            edge.push_back({b.minX() - 0.5, fy});
            edge.push_back({b.maxX() + 0.5, fy});
        }
        outlines.push_back(exp.wcs()->pixelToSky(edge));
        const Point2D c{b.minX() + 0.5 * b.width(), b.minY() + 0.5 * b.height()};
        scales.push_back(exp.wcs()->pixelScale(c).asArcseconds());
        sum += exp.wcs()->pixelToSky(c).vector();
    }
    std::nth_element(scales.begin(), scales.begin() + std::ptrdiff_t(scales.size() / 2), scales.end());
    const double scale = scales[scales.size() / 2];
    auto wcs = Wcs::makeTan({0.0, 0.0}, SpherePoint::fromVector(sum.normalized()), scale * arcseconds, 0.0 * degrees);
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (const auto& outline : outlines)
        for (const Point2D& p : wcs->skyToPixel(outline)) {
            if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
            x0 = std::min(x0, p.x);
            y0 = std::min(y0, p.y);
            x1 = std::max(x1, p.x);
            y1 = std::max(y1, p.y);
        }
    if (!(x1 > x0 && y1 > y0)) throw InvalidInputError("cannot build an output grid from the inputs' WCSs");
    const int nx = int(std::ceil(x1 - x0)), ny = int(std::ceil(y1 - y0));
    // Shift so the grid's first pixel centre is at the lower-left corner of the union plus half a pixel.
    wcs = wcs->shiftedPixelOrigin({-(x0 + 0.5), -(y0 + 0.5)});
    return {wcs, Box2I({0, 0}, nx, ny), "automatic"};
}

OutputGrid chooseGrid(const po::variables_map& vm, const std::vector<std::string>& paths,
                      const std::vector<std::string>& weights, const InputOptions& opts) {
    const bool haveCenter = vm.count("center") > 0, haveSize = vm.count("size") > 0, haveScale = vm.count("pixel-scale") > 0;
    if (vm.count("template")) {
        if (haveCenter || haveSize || haveScale)
            throw ConfigError("--template cannot be combined with --center, --size or --pixel-scale");
        return gridFromTemplate(vm["template"].as<std::string>());
    }
    if (haveCenter || haveSize || haveScale) {
        if (!(haveCenter && haveSize && haveScale)) throw ConfigError("--center, --size and --pixel-scale go together");
        const auto [ra, dec] = parsePair(vm["center"].as<std::string>(), "center");
        const auto [nx, ny] = parsePair(vm["size"].as<std::string>(), "size");
        const double scale = vm["pixel-scale"].as<double>();
        if (!(dec >= -90 && dec <= 90)) throw ConfigError("--center declination must be in [-90, 90] degrees");
        if (nx < 1 || ny < 1 || nx > 100000 || ny > 100000 || nx != std::floor(nx) || ny != std::floor(ny))
            throw ConfigError("--size must be two integers in [1, 100000]");
        if (!(scale > 0 && scale < 3600)) throw ConfigError("--pixel-scale must be in (0, 3600) arcsec");
        auto wcs = Wcs::makeTan({0.5 * (nx - 1), 0.5 * (ny - 1)}, SpherePoint::fromDegrees(ra, dec), scale * arcseconds,
                                0.0 * degrees);
        return {wcs, Box2I({0, 0}, int(nx), int(ny)), "center/size"};
    }
    return automaticGrid(paths, weights, opts);
}

double finiteOr(double v, double fallback) { return std::isfinite(v) ? v : fallback; }

/// The weight file of each image (empty: none).
std::vector<std::string> weightPaths(const po::variables_map& vm, const std::vector<std::string>& images) {
    std::vector<std::string> w(images.size());
    const bool list = vm.count("weight") > 0, suffix = vm.count("weight-suffix") > 0;
    if (list && suffix) throw ConfigError("give either --weight (one per image) or --weight-suffix, not both");
    if (list) {
        w = vm["weight"].as<std::vector<std::string>>();
        if (w.size() != images.size())
            throw ConfigError("--weight was given " + std::to_string(w.size()) + " times for " + std::to_string(images.size()) +
                              " images (one per image, in order; '-' for none)");
        for (auto& p : w)
            if (p == "-") p.clear();
    } else if (suffix) {
        const std::string s = vm["weight-suffix"].as<std::string>();
        for (std::size_t i = 0; i < images.size(); ++i) {
            std::string base = images[i];
            const std::size_t dot = base.rfind(".fits");
            if (dot != std::string::npos && dot + 5 == base.size()) base.resize(dot);
            w[i] = base + s;
        }
    }
    return w;
}

int runCoaddImages(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    const auto t0 = std::chrono::steady_clock::now();
    if (!vm.count("images")) throw ConfigError("coadd-images needs at least one input image");
    const auto images = vm["images"].as<std::vector<std::string>>();
    const auto weights = weightPaths(vm, images);
    InputOptions opts;
    opts.hdu = vm["hdu"].as<int>();
    opts.weightHdu = vm["weight-hdu"].as<int>();
    opts.weightKind = weightKind(vm["weight-type"].as<std::string>());
    opts.fluxScaleKey = vm["flux-scale-keyword"].as<std::string>();

    WarpConfig wcfg;
    wcfg.kernel = vm["kernel"].as<std::string>();
    wcfg.numThreads = vm["threads"].as<int>();
    wcfg.validate();
    CoaddConfig ccfg;
    ccfg.rejectArtifacts = vm["reject-artifacts"].as<bool>();
    const std::string combine = vm["combine"].as<std::string>();
    if (combine == "input-weighted")
        ccfg.weighting = CoaddConfig::Weighting::PerInput;
    else if (combine == "weighted")
        ccfg.weighting = CoaddConfig::Weighting::PerPixel;
    else
        throw ConfigError("--combine must be input-weighted or weighted, not '" + combine + "'");
    ccfg.validate();
    const double seeing = vm["seeing"].as<double>();
    if (!(seeing > 0 && seeing < 100)) throw ConfigError("--seeing must be in (0, 100) arcsec");

    const OutputGrid grid = chooseGrid(vm, images, weights, opts);
    const Point2D gridCentre{0.5 * (grid.bbox.width() - 1), 0.5 * (grid.bbox.height() - 1)};
    const double gridScale = grid.wcs->pixelScale(gridCentre).asArcseconds();
    CoaddAssembler assembler(grid.bbox, ccfg);

    std::vector<char> overlaps(images.size(), 1);
    std::vector<CoaddPsfInput> psfInputs;
    int used = 0, missing = 0, calibrated = 0, withPsf = 0;
    for (int pass = 0; pass < assembler.numPasses(); ++pass) {
        assembler.beginPass(pass);
        for (std::size_t i = 0; i < images.size(); ++i) {
            if (!overlaps[i]) continue;
            LoadedInput in = loadInput(images[i], weights[i], opts);
            const Exposure& exp = in.exposure;
            const Box2I box = destinationBBox(exp.bbox(), *exp.wcs(), *grid.wcs, grid.bbox);
            if (box.empty()) {
                overlaps[i] = 0;
                ++missing;
                DRP_LOG_WARN("coadd-images", images[i] << " does not overlap the output grid; skipped");
                continue;
            }
            const Point2D c{exp.bbox().minX() + 0.5 * exp.width(), exp.bbox().minY() + 0.5 * exp.height()};
            const double inScale = exp.wcs()->pixelScale(c).asArcseconds();
            WarpMetadata meta;
            meta.id = std::int64_t(i);
            meta.exposureTimeS = std::max(0.0, finiteOr(exp.visitInfo().exposureTimeS, 0.0));
            meta.mjd = finiteOr(exp.visitInfo().midExposureMjdTai, 0.0);
            meta.psfSigmaPx = exp.hasPsf() ? exp.psf()->computeSigma(c) * inScale / gridScale
                                           : seeing / (2.0 * std::sqrt(2.0 * std::log(2.0))) / gridScale;
            meta.photoScale = in.fluxScale;
            const Exposure warp = warpExposure(exp, grid.wcs, box, wcfg);
            const double weight = assembler.add(embedInGrid(warp.maskedImage(), grid.bbox), meta);
            if (pass == 0) {
                ++used;
                calibrated += in.calibrated;
                if (exp.hasPsf()) {
                    ++withPsf;
                    if (std::isfinite(weight) && weight > 0)
                        psfInputs.push_back({exp.psf(), exp.wcs(), weight, exp.bbox(), meta.id});
                }
            }
        }
    }
    if (used == 0)
        throw InvalidInputError("none of the " + std::to_string(images.size()) + " inputs overlaps the output grid (" +
                                grid.origin + ")");
    if (calibrated > 0 && calibrated < used)
        DRP_LOG_WARN("coadd-images", calibrated << " of " << used
                                                << " inputs have a PhotoCalib (scaled to nJy), the others only their "
                                                << opts.fluxScaleKey << ": the coadd mixes units");
    MaskedImageF coadd = assembler.finish();

    Exposure out(coadd, grid.wcs);
    if (withPsf == used && !psfInputs.empty()) out.setPsf(CoaddPsf::make(grid.wcs, psfInputs, wcfg.kernel));
    if (calibrated == used) {
        out.setPhotoCalib(std::make_shared<const PhotoCalib>(1.0));
        out.metadata().set("BUNIT", PropertyList::Value(std::string("nJy")), "pixel unit");
    }
    out.metadata().set("NINPUTS", PropertyList::Value(std::int64_t(used)), "images contributing to the coadd");
    out.metadata().set("COMBINE", PropertyList::Value(combine), "coadd-images --combine");
    out.metadata().set("WARPKERN", PropertyList::Value(wcfg.kernel), "warping kernel");
    out.metadata().set("REJECTAR", PropertyList::Value(ccfg.rejectArtifacts), "artifact rejection");
    const std::string outPath = vm["out"].as<std::string>();
    writeExposure(outPath, out);

    std::int64_t good = 0;
    const MaskPixel noData = coadd.mask().planeBitMask("NO_DATA");
    for (int y = 0; y < coadd.height(); ++y)
        for (int x = 0; x < coadd.width(); ++x) good += (coadd.mask()(x, y) & noData) == 0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("coadd-images: %d of %zu inputs coadded (%d missed the grid) onto %dx%d at %.3f\"/px (%s), coverage %.3f, "
                "%s, %s%s, written to %s in %.2f s\n",
                used, images.size(), missing, grid.bbox.width(), grid.bbox.height(), gridScale, grid.origin.c_str(),
                double(good) / double(grid.bbox.area()), calibrated == used ? "nJy" : "input units x flux scale",
                combine.c_str(), ccfg.rejectArtifacts ? ", artifacts rejected" : "", outPath.c_str(), secs);
    return 0;
}

}  // namespace

void registerCoaddImagesCommand() {
    registerCommand(
        {"coadd-images", "warp calibrated images onto one grid and coadd them (like SWarp)",
         [](po::options_description& d) {
             d.add_options()("images", po::value<std::vector<std::string>>()->multitoken(),
                             "input FITS images (calexps or plain images with a TAN/TAN-SIP WCS)")(
                 "out", po::value<std::string>()->required(), "output coadd FITS (IMAGE, MASK, VARIANCE[, PSF])")(
                 "template", po::value<std::string>(),
                 "output grid: WCS and NAXIS1 x NAXIS2 of a FITS file or a text header (SWarp's coadd.head)")(
                 "center", po::value<std::string>(), "output grid centre RA,DEC (degrees; with --size, --pixel-scale)")(
                 "size", po::value<std::string>(), "output grid NX,NY (pixels)")(
                 "pixel-scale", po::value<double>(), "output grid pixel scale (arcsec)")(
                 "hdu", po::value<int>()->default_value(-1),
                 "image HDU of plain inputs (0-based; -1: calexp layout if present, else the first 2-d image)")(
                 "weight", po::value<std::vector<std::string>>(),
                 "weight map of each plain image (repeat, in order; '-': none, estimate the noise)")(
                 "weight-suffix", po::value<std::string>(), "weight map = image name with .fits replaced by this")(
                 "weight-hdu", po::value<int>()->default_value(-1), "HDU of the weight maps")(
                 "weight-type", po::value<std::string>()->default_value("inverse-variance"),
                 "inverse-variance, variance or sigma")(
                 "flux-scale-keyword", po::value<std::string>()->default_value("FLXSCALE"),
                 "header keyword scaling a plain image (1 when absent)")(
                 "kernel", po::value<std::string>()->default_value("lanczos3"),
                 "warping kernel: lanczos3, lanczos2, lanczos4, bilinear, nearest")(
                 "combine", po::value<std::string>()->default_value("input-weighted"),
                 "input-weighted (1/median variance per input) or weighted (1/variance per pixel)")(
                 "reject-artifacts", po::bool_switch()->default_value(false), "reject transients and artifacts (3 passes)")(
                 "seeing", po::value<double>()->default_value(1.0),
                 "PSF FWHM (arcsec) assumed for inputs without a PSF (artifact rejection)")(
                 "threads", po::value<int>()->default_value(1), "warping threads (result independent of it)");
         },
         [](po::positional_options_description& p) { p.add("images", -1); }, runCoaddImages});
}

}  // namespace drp
