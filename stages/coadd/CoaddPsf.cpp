#include "stages/coadd/CoaddPsf.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "core/Error.h"
#include "stages/coadd/Lanczos.h"

namespace drp {

namespace {

// ---------------------------------------------------------------- flattening helpers

void putString(std::vector<double>& out, const std::string& s) {
    out.push_back(double(s.size()));
    for (unsigned char c : s) out.push_back(double(c));
}

/// Reads from a flat array with bounds checks (InvalidInputError on a malformed record).
struct Reader {
    const std::vector<double>& v;
    std::size_t pos = 0;
    const char* what;
    double next() {
        if (pos >= v.size()) throw InvalidInputError(std::string("CoaddPsf record: array '") + what + "' is truncated");
        return v[pos++];
    }
    std::size_t count(double max) {
        const double c = next();
        if (!(c >= 0 && c <= max && c == std::floor(c))) {
            throw InvalidInputError(std::string("CoaddPsf record: bad count in '") + what + "'");
        }
        return std::size_t(c);
    }
    std::string string() {
        const std::size_t n = count(4096);
        std::string s;
        for (std::size_t i = 0; i < n; ++i) {
            const double c = next();
            if (!(c >= 1 && c <= 255 && c == std::floor(c))) throw InvalidInputError("CoaddPsf record: bad character code");
            s.push_back(char(int(c)));
        }
        return s;
    }
    bool atEnd() const { return pos == v.size(); }
};

void putMatrix(std::vector<double>& out, const Eigen::MatrixXd& m, int order) {
    for (int p = 0; p <= order; ++p)
        for (int q = 0; q <= order; ++q) out.push_back(m(p, q));
}

void putWcs(std::vector<double>& out, const Wcs& wcs) {
    out.push_back(wcs.crpix().x), out.push_back(wcs.crpix().y);
    out.push_back(wcs.crval().ra().asRadians()), out.push_back(wcs.crval().dec().asRadians());
    const Eigen::Matrix2d& cd = wcs.cd();
    out.push_back(cd(0, 0)), out.push_back(cd(0, 1)), out.push_back(cd(1, 0)), out.push_back(cd(1, 1));
    const auto& sip = wcs.sip();
    const int order = sip ? sip->order : 0, inv = sip ? sip->inverseOrder : 0;
    out.push_back(order);
    if (order > 0) putMatrix(out, sip->a, order), putMatrix(out, sip->b, order);
    out.push_back(inv);
    if (inv > 0) putMatrix(out, sip->ap, inv), putMatrix(out, sip->bp, inv);
}

Eigen::MatrixXd getMatrix(Reader& r, int order) {
    Eigen::MatrixXd m(order + 1, order + 1);
    for (int p = 0; p <= order; ++p)
        for (int q = 0; q <= order; ++q) m(p, q) = r.next();
    return m;
}

std::shared_ptr<const Wcs> getWcs(Reader& r) {
    Point2D crpix{r.next(), r.next()};
    const double ra = r.next(), dec = r.next();
    Eigen::Matrix2d cd;
    cd(0, 0) = r.next(), cd(0, 1) = r.next(), cd(1, 0) = r.next(), cd(1, 1) = r.next();
    std::optional<SipPolynomials> sip;
    const int order = int(r.count(Wcs::maxSipOrder));
    SipPolynomials s;
    s.order = order;
    if (order > 0) s.a = getMatrix(r, order), s.b = getMatrix(r, order);
    const int inv = int(r.count(Wcs::maxSipOrder));
    s.inverseOrder = inv;
    if (inv > 0) s.ap = getMatrix(r, inv), s.bp = getMatrix(r, inv);
    if (order > 0 || inv > 0) sip = s;
    return std::make_shared<const Wcs>(crpix, SpherePoint(Angle::fromRadians(ra), Angle::fromRadians(dec)), cd, sip);
}

void putRecord(std::vector<double>& out, const PsfRecord& rec) {
    putString(out, rec.typeName);
    out.push_back(double(rec.arrays.size()));
    for (const auto& [name, values] : rec.arrays) {
        putString(out, name);
        out.push_back(double(values.size()));
        out.insert(out.end(), values.begin(), values.end());
    }
}

PsfRecord getRecord(Reader& r) {
    PsfRecord rec;
    rec.typeName = r.string();
    const std::size_t n = r.count(1e6);
    for (std::size_t a = 0; a < n; ++a) {
        std::string name = r.string();
        const std::size_t c = r.count(1e9);
        if (r.pos + c > r.v.size()) throw InvalidInputError("CoaddPsf record: a nested PSF array is truncated");
        std::vector<double> values(r.v.begin() + std::ptrdiff_t(r.pos), r.v.begin() + std::ptrdiff_t(r.pos + c));
        r.pos += c;
        rec.arrays.emplace_back(std::move(name), std::move(values));
    }
    return rec;
}

std::shared_ptr<const Psf> makeFromRecord(const PsfRecord& rec) {
    if (rec.scalar("version") != 1.0) throw InvalidInputError("CoaddPsf record: unsupported version");
    std::string kernel;
    for (double c : rec.get("kernel")) {
        if (!(c >= 1 && c <= 255 && c == std::floor(c))) throw InvalidInputError("CoaddPsf record: bad kernel name");
        kernel.push_back(char(int(c)));
    }
    Reader cw{rec.get("coaddWcs"), 0, "coaddWcs"};
    auto coaddWcs = getWcs(cw);
    const auto& weights = rec.get("weights");
    const auto& boxes = rec.get("validBoxes");
    const auto& ids = rec.get("ids");
    const std::size_t n = weights.size();
    if (boxes.size() != 4 * n || ids.size() != n) throw InvalidInputError("CoaddPsf record: inconsistent input counts");
    Reader wr{rec.get("inputWcs"), 0, "inputWcs"};
    Reader pr{rec.get("inputPsfs"), 0, "inputPsfs"};
    std::vector<CoaddPsfInput> inputs(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < 4; ++k)
            if (!(std::fabs(boxes[4 * i + k]) < 1e9 && boxes[4 * i + k] == std::floor(boxes[4 * i + k]))) {
                throw InvalidInputError("CoaddPsf record: validBoxes must hold integers");
            }
        inputs[i].weight = weights[i];
        inputs[i].validBox = Box2I({int(boxes[4 * i]), int(boxes[4 * i + 1])}, int(boxes[4 * i + 2]), int(boxes[4 * i + 3]));
        inputs[i].id = std::int64_t(ids[i]);
        inputs[i].wcs = getWcs(wr);
        inputs[i].psf = Psf::fromRecord(getRecord(pr));
    }
    if (!wr.atEnd() || !pr.atEnd()) throw InvalidInputError("CoaddPsf record: trailing values in the input arrays");
    return CoaddPsf::make(coaddWcs, std::move(inputs), kernel);
}

/// Resample `in` (parent frame, xy0 set) onto the pixels of `outBox`: output pixel q samples the input at
/// inCentre + J (q - outCentre), zero outside the input; multiplied by |det J| (flux conservation).
Image<double> resampleAffine(const Image<double>& in, Point2D inCentre, const Eigen::Matrix2d& J, Point2D outCentre,
                             const Box2I& outBox, const WarpingKernel& kernel) {
    Image<double> out(outBox, 0.0);
    const double area = std::fabs(J.determinant());
    const int T = kernel.numTaps();
    double wx[WarpingKernel::kMaxTaps], wy[WarpingKernel::kMaxTaps];
    const int w = in.width(), h = in.height();
    for (int y = 0; y < outBox.height(); ++y) {
        const double dy = outBox.minY() + y - outCentre.y;
        for (int x = 0; x < outBox.width(); ++x) {
            const double dx = outBox.minX() + x - outCentre.x;
            const double vx = inCentre.x + J(0, 0) * dx + J(0, 1) * dy - in.xy0().x;
            const double vy = inCentre.y + J(1, 0) * dx + J(1, 1) * dy - in.xy0().y;
            if (vx <= -kernel.support() || vy <= -kernel.support() || vx >= w - 1 + kernel.support() ||
                vy >= h - 1 + kernel.support()) {
                continue;
            }
            const int ix = kernel.computeWeights(vx, wx), iy = kernel.computeWeights(vy, wy);
            double s = 0.0;
            for (int j = 0; j < T; ++j) {
                const int yy = iy + j;
                if (yy < 0 || yy >= h) continue;
                const double* row = in.row(yy);
                double sr = 0.0;
                for (int i = 0; i < T; ++i) {
                    const int xx = ix + i;
                    if (xx >= 0 && xx < w) sr += wx[i] * row[xx];
                }
                s += wy[j] * sr;
            }
            out(x, y) = area * s;
        }
    }
    return out;
}

double sum(const Image<double>& img) {
    double s = 0.0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) s += img(x, y);
    return s;
}

}  // namespace

void registerCoaddPsf() {
    static const bool once = [] {
        Psf::registerType(CoaddPsf::kTypeName, makeFromRecord);
        return true;
    }();
    (void)once;
}

CoaddPsf::CoaddPsf(std::shared_ptr<const Wcs> coaddWcs, std::vector<CoaddPsfInput> inputs, const std::string& kernel)
    : coaddWcs_(std::move(coaddWcs)), inputs_(std::move(inputs)), kernel_(kernel) {
    registerCoaddPsf();
    (void)WarpingKernel(kernel_);  // ConfigError for a bad name
    if (!coaddWcs_) throw InvalidInputError("CoaddPsf: no coadd WCS");
    if (inputs_.empty()) throw InvalidInputError("CoaddPsf: at least one input is needed");
    for (const auto& in : inputs_) {
        if (!in.psf || !in.wcs) throw InvalidInputError("CoaddPsf: every input needs a PSF and a WCS");
        if (!(in.weight > 0.0) || !std::isfinite(in.weight)) throw InvalidInputError("CoaddPsf: weights must be positive");
    }
}

Point2D CoaddPsf::inputPosition(std::size_t i, Point2D position) const {
    return inputs_.at(i).wcs->skyToPixel(coaddWcs_->pixelToSky(position));
}

std::vector<std::size_t> CoaddPsf::inputsAt(Point2D position) const {
    std::vector<std::size_t> out;
    const SpherePoint sky = coaddWcs_->pixelToSky(position);
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
        if (inputs_[i].validBox.empty()) {
            out.push_back(i);
            continue;
        }
        const Point2D p = inputs_[i].wcs->skyToPixel(sky);
        if (std::isfinite(p.x) && std::isfinite(p.y) && Box2D(inputs_[i].validBox).contains(p)) out.push_back(i);
    }
    return out;
}

Image<double> CoaddPsf::compute(Point2D position, bool centred) const {
    std::vector<std::size_t> use = inputsAt(position);
    if (use.empty()) {
        use.resize(inputs_.size());
        for (std::size_t i = 0; i < use.size(); ++i) use[i] = i;
    }
    const WarpingKernel kernel(kernel_);
    struct Prepared {
        Image<double> img;
        Point2D inCentre;
        Eigen::Matrix2d J;
        double weight;
    };
    std::vector<Prepared> prep;
    int half = 0;
    for (std::size_t i : use) {
        const CoaddPsfInput& in = inputs_[i];
        auto map = [&](double x, double y) { return in.wcs->skyToPixel(coaddWcs_->pixelToSky({x, y})); };
        const Point2D p = map(position.x, position.y);
        const Point2D px1 = map(position.x + 1, position.y), px0 = map(position.x - 1, position.y);
        const Point2D py1 = map(position.x, position.y + 1), py0 = map(position.x, position.y - 1);
        Eigen::Matrix2d J;
        J << 0.5 * (px1.x - px0.x), 0.5 * (py1.x - py0.x), 0.5 * (px1.y - px0.y), 0.5 * (py1.y - py0.y);
        if (!J.allFinite() || !std::isfinite(p.x) || !std::isfinite(p.y) || std::fabs(J.determinant()) < 1e-12) {
            continue;  // the coadd position does not map onto this input (far side of its tangent plane)
        }
        Prepared pr;
        pr.img = centred ? in.psf->computeKernelImage(p) : in.psf->computeImage(p);
        pr.inCentre = centred ? Point2D{0.0, 0.0} : p;
        pr.J = J;
        pr.weight = in.weight;
        const double inHalf = 0.5 * std::max(pr.img.width(), pr.img.height());
        const Eigen::Matrix2d Jinv = J.inverse();
        const double norm = Jinv.operatorNorm();
        half = std::max(half, int(std::ceil(inHalf * norm - 0.5)));
        prep.push_back(std::move(pr));
    }
    if (prep.empty()) throw NumericalError("CoaddPsf: no input maps onto this coadd position");
    const Point2D outCentre = centred ? Point2D{0.0, 0.0} : position;
    const int cx = centred ? 0 : int(std::floor(position.x + 0.5)), cy = centred ? 0 : int(std::floor(position.y + 0.5));
    const Box2I outBox({cx - half, cy - half}, 2 * half + 1, 2 * half + 1);
    Image<double> total(outBox, 0.0);
    double wsum = 0.0;
    for (const auto& pr : prep) {
        Image<double> warped = resampleAffine(pr.img, pr.inCentre, pr.J, outCentre, outBox, kernel);
        const double s = sum(warped);
        if (!(s > 0.0) || !std::isfinite(s)) continue;
        const double f = pr.weight / s;
        for (int y = 0; y < outBox.height(); ++y)
            for (int x = 0; x < outBox.width(); ++x) total(x, y) += f * warped(x, y);
        wsum += pr.weight;
    }
    if (!(wsum > 0.0)) throw NumericalError("CoaddPsf: every warped input PSF has a non-positive sum");
    const double s = sum(total);
    total *= 1.0 / s;
    total.setXY0({0, 0});
    return total;
}

Image<double> CoaddPsf::doComputeKernelImage(Point2D position) const { return compute(position, true); }
Image<double> CoaddPsf::doComputeImage(Point2D position) const { return compute(position, false); }

PsfRecord CoaddPsf::doToRecord() const {
    PsfRecord r;
    r.set("version", {1.0});
    std::vector<double> k;
    for (unsigned char c : kernel_) k.push_back(double(c));
    r.set("kernel", std::move(k));
    std::vector<double> cw;
    putWcs(cw, *coaddWcs_);
    r.set("coaddWcs", std::move(cw));
    std::vector<double> weights, boxes, ids, wcs, psfs;
    for (const auto& in : inputs_) {
        weights.push_back(in.weight);
        boxes.push_back(in.validBox.minX()), boxes.push_back(in.validBox.minY());
        boxes.push_back(in.validBox.width()), boxes.push_back(in.validBox.height());
        ids.push_back(double(in.id));
        putWcs(wcs, *in.wcs);
        putRecord(psfs, in.psf->toRecord());
    }
    r.set("weights", std::move(weights));
    r.set("validBoxes", std::move(boxes));
    r.set("ids", std::move(ids));
    r.set("inputWcs", std::move(wcs));
    r.set("inputPsfs", std::move(psfs));
    return r;
}

}  // namespace drp
