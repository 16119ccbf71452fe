// SkyMap: rings tessellation into tracts and patches (see SkyMap.h for the geometry).
#include "sky/SkyMap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "core/Error.h"

namespace drp {

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kTwoPi = 2.0 * std::numbers::pi;

/// Ring of a declination: -1 south cap, numRings north cap, else [0, numRings). Half-open bands.
int ringOf(double decRad, int numRings, double ringSize) {
    double t = (decRad + 0.5 * kPi - 0.5 * ringSize) / ringSize;
    if (t < 0.0) return -1;
    if (t >= double(numRings)) return numRings;
    int i = int(std::floor(t));
    return std::clamp(i, 0, numRings - 1);
}

/// Slice of an RA in a ring of n tracts whose tract 0 is centred at raOffset. Half-open slices.
int sliceOf(double raRad, int n, double raOffsetRad) {
    if (n <= 1) return 0;
    double t = (raRad - raOffsetRad) / kTwoPi * n + 0.5;
    t -= std::floor(t / n) * n;  // [0, n)
    int j = int(std::floor(t));
    if (j >= n || j < 0) j = 0;  // t rounded up to n
    return j;
}

double ringSouthEdge(int ring, double ringSize) { return -0.5 * kPi + (ring + 0.5) * ringSize; }

int tractsInRing(int ring, double ringSize) {
    double lo = ringSouthEdge(ring, ringSize), hi = lo + ringSize;
    double nearEquator = (lo < 0.0 && hi > 0.0) ? 0.0 : std::min(std::fabs(lo), std::fabs(hi));
    return int(std::floor(kTwoPi * std::cos(nearEquator) / ringSize)) + 1;
}

Point2D corner(const Box2I& b, int k) {  // pixel-edge corners, counter-clockwise
    double x0 = b.minX() - 0.5, x1 = b.maxX() + 0.5, y0 = b.minY() - 0.5, y1 = b.maxY() + 0.5;
    switch (k) {
        case 0: return {x0, y0};
        case 1: return {x1, y0};
        case 2: return {x1, y1};
        default: return {x0, y1};
    }
}

bool isConvex(const std::vector<Point2D>& v) {
    int pos = 0, neg = 0;
    const std::size_t n = v.size();
    for (std::size_t i = 0; i < n; ++i) {
        const Point2D& a = v[i];
        const Point2D& b = v[(i + 1) % n];
        const Point2D& c = v[(i + 2) % n];
        double cr = (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x);
        if (cr > 0) ++pos;
        if (cr < 0) ++neg;
    }
    return pos == 0 || neg == 0;
}

/// Separating-axis test of a convex polygon against an axis-aligned box (touching counts as overlap).
bool convexOverlapsBox(const std::vector<Point2D>& poly, double bx0, double by0, double bx1, double by1) {
    const std::size_t n = poly.size();
    for (std::size_t i = 0; i < n; ++i) {
        const Point2D& a = poly[i];
        const Point2D& b = poly[(i + 1) % n];
        double nx = -(b.y - a.y), ny = b.x - a.x;
        if (nx == 0.0 && ny == 0.0) continue;
        double pmin = std::numeric_limits<double>::infinity(), pmax = -pmin;
        for (const auto& p : poly) {
            double d = nx * p.x + ny * p.y;
            pmin = std::min(pmin, d);
            pmax = std::max(pmax, d);
        }
        double c[4] = {nx * bx0 + ny * by0, nx * bx1 + ny * by0, nx * bx1 + ny * by1, nx * bx0 + ny * by1};
        double bmin = *std::min_element(c, c + 4), bmax = *std::max_element(c, c + 4);
        if (pmax < bmin || bmax < pmin) return false;
    }
    return true;  // the x and y axes were tested by the caller's bbox selection
}

}  // namespace

void SkyMapConfig::validate() const {
    auto fail = [](const std::string& what) { throw ConfigError("SkyMapConfig: " + what); };
    if (numRings < 1 || numRings > 10000) fail("numRings must be in [1, 10000], got " + std::to_string(numRings));
    if (!(pixelScaleArcsec > 0.0) || !(pixelScaleArcsec <= 3600.0))
        fail("pixelScaleArcsec must be in (0, 3600], got " + std::to_string(pixelScaleArcsec));
    if (!(tractOverlapArcmin >= 0.0) || !std::isfinite(tractOverlapArcmin))
        fail("tractOverlapArcmin must be finite and >= 0, got " + std::to_string(tractOverlapArcmin));
    if (patchInnerDimension < 1) fail("patchInnerDimension must be >= 1, got " + std::to_string(patchInnerDimension));
    if (patchBorder < 0) fail("patchBorder must be >= 0, got " + std::to_string(patchBorder));
    if (numPatchesPerSide < 0) fail("numPatchesPerSide must be >= 0, got " + std::to_string(numPatchesPerSide));
    if (!std::isfinite(raOffsetDeg)) fail("raOffsetDeg must be finite");
}

bool TractInfo::containsInner(const SpherePoint& p) const {
    int r = ringOf(p.dec().asRadians(), numRings_, ringSizeRad_);
    if (r != ring) return false;
    if (ring < 0 || ring >= numRings_) return true;
    return sliceOf(p.ra().asRadians(), numInRing, raOffsetRad_) == indexInRing;
}

SkyMap::SkyMap(const SkyMapConfig& config) : config_(config) {
    config_.validate();
    const int nr = config_.numRings;
    ringSizeRad_ = kPi / (nr + 1);
    const double scaleRad = (config_.pixelScaleArcsec * arcseconds).asRadians();
    const double overlapRad = (config_.tractOverlapArcmin * arcminutes).asRadians();
    const double raOffsetRad = (config_.raOffsetDeg * degrees).asRadians();
    const int inner = config_.patchInnerDimension;

    ringFirstId_.resize(nr);
    ringCount_.resize(nr);
    int total = 1;
    for (int i = 0; i < nr; ++i) {
        ringCount_[i] = tractsInRing(i, ringSizeRad_);
        ringFirstId_[i] = total;
        total += ringCount_[i];
    }
    total += 1;
    tracts_.resize(total);
    ringMaxRadiusDeg_.assign(nr + 2, 0.0);

    const double capEdge = 0.5 * kPi - 0.5 * ringSizeRad_;
    for (int id = 0; id < total; ++id) {
        TractInfo& t = tracts_[id];
        t.id = id;
        t.numRings_ = nr;
        t.ringSizeRad_ = ringSizeRad_;
        t.raOffsetRad_ = raOffsetRad;
        std::vector<SpherePoint> boundary;
        if (id == 0 || id == total - 1) {
            const bool south = id == 0;
            t.ring = south ? -1 : nr;
            t.indexInRing = 0;
            t.numInRing = 1;
            t.center = SpherePoint(0.0 * degrees, Angle::fromRadians(south ? -0.5 * kPi : 0.5 * kPi));
            t.decMinDeg = south ? -90.0 : Angle::fromRadians(capEdge).asDegrees();
            t.decMaxDeg = south ? Angle::fromRadians(-capEdge).asDegrees() : 90.0;
            t.raMinDeg = 0.0;
            t.raMaxDeg = 360.0;
            const double edge = south ? -capEdge : capEdge;
            for (int k = 0; k < 256; ++k)
                boundary.emplace_back(Angle::fromRadians(kTwoPi * k / 256), Angle::fromRadians(edge));
        } else {
            int ring = int(std::upper_bound(ringFirstId_.begin(), ringFirstId_.end(), id) - ringFirstId_.begin()) - 1;
            const int n = ringCount_[ring];
            const int j = id - ringFirstId_[ring];
            t.ring = ring;
            t.indexInRing = j;
            t.numInRing = n;
            const double dec0 = ringSouthEdge(ring, ringSizeRad_), dec1 = dec0 + ringSizeRad_;
            const double width = kTwoPi / n;
            const double raC = raOffsetRad + j * width;
            t.center = SpherePoint(Angle::fromRadians(raC), Angle::fromRadians(0.5 * (dec0 + dec1)));
            t.decMinDeg = Angle::fromRadians(dec0).asDegrees();
            t.decMaxDeg = Angle::fromRadians(dec1).asDegrees();
            t.raMinDeg = Angle::fromRadians(raC - 0.5 * width).asDegrees();
            t.raMaxDeg = Angle::fromRadians(raC + 0.5 * width).asDegrees();
            constexpr int kSamples = 65;  // odd: the middle of each edge is sampled
            for (int k = 0; k < kSamples; ++k) {
                double f = double(k) / (kSamples - 1);
                double ra = raC + (f - 0.5) * width, dec = dec0 + f * ringSizeRad_;
                boundary.emplace_back(Angle::fromRadians(ra), Angle::fromRadians(dec0));
                boundary.emplace_back(Angle::fromRadians(ra), Angle::fromRadians(dec1));
                boundary.emplace_back(Angle::fromRadians(raC - 0.5 * width), Angle::fromRadians(dec));
                boundary.emplace_back(Angle::fromRadians(raC + 0.5 * width), Angle::fromRadians(dec));
            }
        }
        // Extent of the inner region in the tract's TAN plane (pixels from the centre).
        auto probe = Wcs::makeTan({0.0, 0.0}, t.center, config_.pixelScaleArcsec * arcseconds, 0.0 * degrees);
        double maxX = 0.0, maxY = 0.0, maxTheta = 0.0;
        for (const auto& b : boundary) {
            Point2D q = probe->skyToPixel(b);
            maxX = std::max(maxX, std::fabs(q.x));
            maxY = std::max(maxY, std::fabs(q.y));
            maxTheta = std::max(maxTheta, t.center.separation(b).asRadians());
        }
        if (!(maxTheta + overlapRad < 80.0 * degrees.radiansPerUnit()))
            throw ConfigError("SkyMap: tract " + std::to_string(id) +
                              " reaches more than 80 deg from its centre; use more rings or less overlap");
        // The gnomonic plane stretches by at most 1/cos^2(theta): grow the overlap by that, plus a few pixels
        // for the boundary sampling.
        const double stretch = 1.0 / std::pow(std::cos(maxTheta + overlapRad), 2);
        const double grow = overlapRad / scaleRad * stretch + 4.0;
        const double halfX = maxX + grow, halfY = maxY + grow;
        if (!(halfX < 5e8 && halfY < 5e8))
            throw ConfigError("SkyMap: tract " + std::to_string(id) + " needs more pixels than an int holds");
        int nx = int(std::ceil(2.0 * halfX / inner)), ny = int(std::ceil(2.0 * halfY / inner));
        nx = std::max({nx, config_.numPatchesPerSide, 1});
        ny = std::max({ny, config_.numPatchesPerSide, 1});
        if (double(nx) * inner + config_.patchBorder > 1e9 || double(ny) * inner + config_.patchBorder > 1e9)
            throw ConfigError("SkyMap: tract " + std::to_string(id) + " needs more pixels than an int holds");
        t.numPatchesX = nx;
        t.numPatchesY = ny;
        t.bbox = Box2I({0, 0}, nx * inner, ny * inner);
        Point2D crpix{0.5 * (t.bbox.width() - 1), 0.5 * (t.bbox.height() - 1)};
        t.wcs = Wcs::makeTan(crpix, t.center, config_.pixelScaleArcsec * arcseconds, 0.0 * degrees);
        const Box2I outer = t.bbox.grow(config_.patchBorder);
        double radius = 0.0;
        for (int k = 0; k < 4; ++k)
            radius = std::max(radius, t.center.separation(t.wcs->pixelToSky(corner(outer, k))).asDegrees());
        t.outerRadiusDeg = radius;
        double& rr = ringMaxRadiusDeg_[t.ring + 1];
        rr = std::max(rr, radius);
    }
}

int SkyMap::numTractsInRing(int ring) const {
    if (ring < 0 || ring >= config_.numRings)
        throw NotFoundError("SkyMap: ring " + std::to_string(ring) + " out of range");
    return ringCount_[ring];
}

const TractInfo& SkyMap::tract(int id) const {
    if (id < 0 || std::size_t(id) >= tracts_.size())
        throw NotFoundError("SkyMap: tract " + std::to_string(id) + " out of range [0, " +
                            std::to_string(tracts_.size()) + ")");
    return tracts_[id];
}

int SkyMap::findTract(const SpherePoint& p) const {
    const int nr = config_.numRings;
    int r = ringOf(p.dec().asRadians(), nr, ringSizeRad_);
    if (r < 0) return 0;
    if (r >= nr) return int(tracts_.size()) - 1;
    return ringFirstId_[r] + sliceOf(p.ra().asRadians(), ringCount_[r], tracts_[0].raOffsetRad_);
}

PatchInfo SkyMap::patch(const TractInfo& t, int x, int y) const {
    if (x < 0 || y < 0 || x >= t.numPatchesX || y >= t.numPatchesY)
        throw NotFoundError("SkyMap: patch (" + std::to_string(x) + "," + std::to_string(y) + ") out of range for tract " +
                            std::to_string(t.id));
    const int inner = config_.patchInnerDimension;
    PatchInfo p;
    p.x = x;
    p.y = y;
    p.index = y * t.numPatchesX + x;
    p.innerBBox = Box2I({x * inner, y * inner}, inner, inner);
    p.outerBBox = p.innerBBox.grow(config_.patchBorder);
    return p;
}

PatchInfo SkyMap::patch(const TractInfo& t, int index) const {
    if (index < 0 || index >= t.numPatches())
        throw NotFoundError("SkyMap: patch index " + std::to_string(index) + " out of range for tract " +
                            std::to_string(t.id));
    return patch(t, index % t.numPatchesX, index / t.numPatchesX);
}

PatchInfo SkyMap::findPatch(const TractInfo& t, const SpherePoint& sky) const {
    Point2D q = t.wcs->skyToPixel(sky);
    if (!(std::fabs(q.x) < 2e9 && std::fabs(q.y) < 2e9))
        throw NotFoundError("SkyMap: point is not on tract " + std::to_string(t.id) + "'s projection");
    Point2I ip{int(std::floor(q.x + 0.5)), int(std::floor(q.y + 0.5))};
    if (!t.bbox.contains(ip))
        throw NotFoundError("SkyMap: point falls outside the bbox of tract " + std::to_string(t.id));
    const int inner = config_.patchInnerDimension;
    return patch(t, ip.x / inner, ip.y / inner);
}

std::vector<SpherePoint> SkyMap::tractPolygon(int id) const {
    const TractInfo& t = tract(id);
    std::vector<SpherePoint> out;
    if (t.ring < 0 || t.ring >= config_.numRings) {
        const double edge = t.ring < 0 ? t.decMaxDeg : t.decMinDeg;
        for (int k = 0; k < 8; ++k) out.push_back(SpherePoint::fromDegrees(45.0 * k, edge));
        return out;
    }
    out.push_back(SpherePoint::fromDegrees(t.raMinDeg, t.decMinDeg));
    out.push_back(SpherePoint::fromDegrees(t.raMaxDeg, t.decMinDeg));
    out.push_back(SpherePoint::fromDegrees(t.raMaxDeg, t.decMaxDeg));
    out.push_back(SpherePoint::fromDegrees(t.raMinDeg, t.decMaxDeg));
    return out;
}

std::vector<SpherePoint> SkyMap::patchPolygon(const TractInfo& t, const PatchInfo& p, bool outer) const {
    const Box2I& b = outer ? p.outerBBox : p.innerBBox;
    std::vector<SpherePoint> out;
    for (int k = 0; k < 4; ++k) out.push_back(t.wcs->pixelToSky(corner(b, k)));
    return out;
}

std::vector<std::pair<int, std::vector<int>>> SkyMap::findOverlaps(const std::vector<SpherePoint>& polygon) const {
    if (polygon.size() < 3) throw InvalidInputError("SkyMap::findOverlaps: the polygon needs at least 3 vertices");
    Eigen::Vector3d sum = Eigen::Vector3d::Zero();
    for (const auto& v : polygon) sum += v.vector();
    if (!(sum.norm() > 1e-12)) throw InvalidInputError("SkyMap::findOverlaps: degenerate polygon");
    const SpherePoint c = SpherePoint::fromVector(sum);
    double rPoly = 0.0;
    for (const auto& v : polygon) rPoly = std::max(rPoly, c.separation(v).asDegrees());
    if (!(rPoly <= 30.0)) throw InvalidInputError("SkyMap::findOverlaps: polygon extends more than 30 deg from its centroid");
    const double eps = 1e-7;  // deg
    const int nr = config_.numRings;
    const int border = config_.patchBorder, inner = config_.patchInnerDimension;

    std::vector<std::pair<int, std::vector<int>>> result;
    auto consider = [&](const TractInfo& t) {
        if (c.separation(t.center).asDegrees() > rPoly + t.outerRadiusDeg + eps) return;
        std::vector<Point2D> pix = t.wcs->skyToPixel(polygon);
        double x0 = std::numeric_limits<double>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
        for (const auto& q : pix) {
            if (!std::isfinite(q.x) || !std::isfinite(q.y)) return;  // far side: cannot overlap (radius <= 30 deg)
            x0 = std::min(x0, q.x);
            x1 = std::max(x1, q.x);
            y0 = std::min(y0, q.y);
            y1 = std::max(y1, q.y);
        }
        const bool convex = isConvex(pix);
        // Patch x overlaps [x0, x1] iff x*inner - border - 0.5 <= x1 and (x+1)*inner + border - 0.5 >= x0.
        const int px0 = std::max(0, int(std::ceil((x0 + 0.5 - border) / inner - 1.0)));
        const int px1 = std::min(t.numPatchesX - 1, int(std::floor((x1 + 0.5 + border) / inner)));
        const int py0 = std::max(0, int(std::ceil((y0 + 0.5 - border) / inner - 1.0)));
        const int py1 = std::min(t.numPatchesY - 1, int(std::floor((y1 + 0.5 + border) / inner)));
        std::vector<int> patches;
        for (int py = py0; py <= py1; ++py) {
            for (int px = px0; px <= px1; ++px) {
                const double bx0 = px * double(inner) - border - 0.5, bx1 = (px + 1) * double(inner) + border - 0.5;
                const double by0 = py * double(inner) - border - 0.5, by1 = (py + 1) * double(inner) + border - 0.5;
                if (bx0 > x1 || bx1 < x0 || by0 > y1 || by1 < y0) continue;
                if (convex && !convexOverlapsBox(pix, bx0, by0, bx1, by1)) continue;
                patches.push_back(py * t.numPatchesX + px);
            }
        }
        if (!patches.empty()) result.emplace_back(t.id, std::move(patches));
    };

    const double cDec = c.dec().asDegrees();
    if (cDec + 90.0 <= rPoly + ringMaxRadiusDeg_[0] + eps) consider(tracts_.front());
    for (int r = 0; r < nr; ++r) {
        const double ringDec = Angle::fromRadians(ringSouthEdge(r, ringSizeRad_) + 0.5 * ringSizeRad_).asDegrees();
        if (std::fabs(cDec - ringDec) > rPoly + ringMaxRadiusDeg_[r + 1] + eps) continue;
        for (int k = 0; k < ringCount_[r]; ++k) consider(tracts_[ringFirstId_[r] + k]);
    }
    if (90.0 - cDec <= rPoly + ringMaxRadiusDeg_[nr + 1] + eps) consider(tracts_.back());
    return result;
}

}  // namespace drp
