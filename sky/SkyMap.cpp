// SkyMap: rings tessellation into tracts and patches (see SkyMap.h for the geometry).
#include "sky/SkyMap.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
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

struct SkyMap::FastTan {
    /// The centre's unit vector and the tract's TAN projection unrolled (the same arithmetic as
    /// tract.wcs->skyToPixel, without recomputing sines and cosines), for findOverlaps.
    double center[3];   // unit vector of the tract centre
    double rotT[3][3];  // celestial -> native frame (transpose of the WCS rotation)
    double cdInv[2][2]; // inverse CD matrix, pixels per degree
    double crpix[2];
};

struct SkyMap::Entry {
    TractInfo info;
    FastTan fast;

    explicit Entry(TractInfo t) : info(std::move(t)) {
        FastTan& f = fast;
        const Eigen::Vector3d cv = info.center.vector();
        for (int k = 0; k < 3; ++k) f.center[k] = cv[k];
        // The WCS rotation is Rz(ra) * Ry: rows of its transpose below (see Wcs's constructor).
        const SpherePoint crval = info.wcs->crval();
        const double a = crval.ra().asRadians(), d = crval.dec().asRadians();
        const double ca = std::cos(a), sa = std::sin(a), cdl = std::cos(d), sdl = std::sin(d);
        const double rt[3][3] = {{ca * sdl, sa * sdl, -cdl}, {-sa, ca, 0.0}, {ca * cdl, sa * cdl, sdl}};
        for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) f.rotT[i][k] = rt[i][k];
        const Eigen::Matrix2d& cd = info.wcs->cd();
        const double invDet = 1.0 / (cd(0, 0) * cd(1, 1) - cd(0, 1) * cd(1, 0));
        f.cdInv[0][0] = cd(1, 1) * invDet;
        f.cdInv[0][1] = -cd(0, 1) * invDet;
        f.cdInv[1][0] = -cd(1, 0) * invDet;
        f.cdInv[1][1] = cd(0, 0) * invDet;
        f.crpix[0] = info.wcs->crpix().x;
        f.crpix[1] = info.wcs->crpix().y;
    }
};

/// Lock-free cache: chunks of kChunk atomic entry pointers, each chunk allocated on first use. A slot goes
/// from null to its entry once (compare-exchange; a thread that loses the race deletes its own copy).
struct SkyMap::Cache {
    static constexpr int kChunkBits = 10;
    static constexpr int kChunk = 1 << kChunkBits;
    struct Chunk {
        std::atomic<Entry*> slot[kChunk];
        Chunk() {
            for (auto& a : slot) a.store(nullptr, std::memory_order_relaxed);
        }
        ~Chunk() {
            for (auto& a : slot) delete a.load(std::memory_order_relaxed);
        }
        Chunk(const Chunk&) = delete;
        Chunk& operator=(const Chunk&) = delete;
    };
    std::size_t numChunks = 0;
    std::unique_ptr<std::atomic<Chunk*>[]> chunks;
    std::unique_ptr<std::atomic<double>[]> ringRadius;  // per ring slot; NaN = not computed yet
    std::atomic<std::size_t> built{0};
    std::once_flag allOnce;
    std::vector<TractInfo> all;

    Cache(std::size_t numTracts, int numSlots)
        : numChunks((numTracts + kChunk - 1) / kChunk),
          chunks(new std::atomic<Chunk*>[numChunks]),
          ringRadius(new std::atomic<double>[std::size_t(numSlots)]) {
        for (std::size_t i = 0; i < numChunks; ++i) chunks[i].store(nullptr, std::memory_order_relaxed);
        for (int i = 0; i < numSlots; ++i)
            ringRadius[i].store(std::numeric_limits<double>::quiet_NaN(), std::memory_order_relaxed);
    }
    ~Cache() {
        for (std::size_t i = 0; i < numChunks; ++i) delete chunks[i].load(std::memory_order_relaxed);
    }
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;
};

SkyMap::SkyMap(const SkyMapConfig& config) : config_(config) {
    config_.validate();
    const int nr = config_.numRings;
    ringSizeRad_ = kPi / (nr + 1);
    raOffsetRad_ = (config_.raOffsetDeg * degrees).asRadians();
    const double scaleRad = (config_.pixelScaleArcsec * arcseconds).asRadians();
    const double overlapRad = (config_.tractOverlapArcmin * arcminutes).asRadians();
    const int inner = config_.patchInnerDimension;

    ringFirstId_.resize(nr);
    ringCount_.resize(nr);
    std::int64_t total = 1;
    for (int i = 0; i < nr; ++i) {
        ringCount_[i] = tractsInRing(i, ringSizeRad_);
        ringFirstId_[i] = int(total);
        total += ringCount_[i];
    }
    total += 1;
    numTracts_ = std::size_t(total);
    cache_ = std::make_unique<Cache>(numTracts_, nr + 2);

    // Per ring slot, in id order (south cap, rings, north cap): a rigorous upper bound on how far any
    // point of a tract's inner region is from its centre (thetaB; triangle inequality via the centre's
    // meridian: half the ring height plus half the RA width along the parallel nearest the equator; the cap
    // radius for a cap), padded for rounding (RA offsets far from 0 lose bits in raC). From it, upper bounds
    // on the bbox half-extent (tan(theta)/scale + the grown overlap, as makeTract computes it), the patch
    // grid and the outer radius (atan of the outer box's half-diagonal). If the bounds prove every tract of
    // the ring within the constructor's limits, nothing is built; otherwise the ring's first tract is built
    // now, which throws the eager constructor's ConfigError (all tracts of a ring are congruent).
    constexpr double kDegPerRad = 180.0 / kPi;
    const double limitRad = 80.0 * degrees.radiansPerUnit();
    const double pad = 1e-12 + 1e-15 * (std::fabs(raOffsetRad_) + kTwoPi);
    ringBoundDeg_.assign(nr + 2, 0.0);
    maxBoundDeg_ = 0.0;
    for (int slot = 0; slot < nr + 2; ++slot) {
        double thetaB = 0.5 * ringSizeRad_;
        if (slot > 0 && slot <= nr) {
            const double lo = ringSouthEdge(slot - 1, ringSizeRad_), hi = lo + ringSizeRad_;
            const double cosMax = (lo < 0.0 && hi > 0.0) ? 1.0 : std::cos(std::min(std::fabs(lo), std::fabs(hi)));
            thetaB += 0.5 * (kTwoPi / ringCount_[slot - 1]) * cosMax;
        }
        thetaB = thetaB * (1.0 + 1e-12) + pad;
        bool safe = thetaB + overlapRad < limitRad - 1e-9;
        double boundDeg = 0.0;
        if (safe) {
            const double c = std::cos(thetaB + overlapRad);
            const double halfB = (std::tan(thetaB) / scaleRad + overlapRad / scaleRad / (c * c)) * (1.0 + 1e-9) + 4.0 + 1e-6;
            const double nB = std::max({std::ceil(2.0 * halfB / inner), double(config_.numPatchesPerSide), 1.0});
            safe = halfB < 5e8 && nB * inner + config_.patchBorder <= 1e9;
            if (safe) {
                const double halfPix = 0.5 * nB * inner + config_.patchBorder;
                boundDeg = std::atan(std::sqrt(2.0) * halfPix * scaleRad) * kDegPerRad * (1.0 + 1e-9) + 1e-9;
            }
        }
        if (!safe) boundDeg = ringRadius(slot);  // builds the ring's first tract: throws if it does not fit
        ringBoundDeg_[slot] = boundDeg;
        maxBoundDeg_ = std::max(maxBoundDeg_, boundDeg);
    }
}

SkyMap::SkyMap(const SkyMap& other)
    : config_(other.config_),
      ringSizeRad_(other.ringSizeRad_),
      raOffsetRad_(other.raOffsetRad_),
      numTracts_(other.numTracts_),
      ringFirstId_(other.ringFirstId_),
      ringCount_(other.ringCount_),
      ringBoundDeg_(other.ringBoundDeg_),
      maxBoundDeg_(other.maxBoundDeg_),
      cache_(std::make_unique<Cache>(numTracts_, config_.numRings + 2)) {}

SkyMap& SkyMap::operator=(const SkyMap& other) {
    if (this != &other) *this = SkyMap(other);
    return *this;
}

SkyMap::SkyMap(SkyMap&&) noexcept = default;
SkyMap& SkyMap::operator=(SkyMap&&) noexcept = default;
SkyMap::~SkyMap() = default;

SpherePoint SkyMap::ringTractCenter(int ring, int j) const {
    const double dec0 = ringSouthEdge(ring, ringSizeRad_), dec1 = dec0 + ringSizeRad_;
    const double width = kTwoPi / ringCount_[ring];
    const double raC = raOffsetRad_ + j * width;
    return SpherePoint(Angle::fromRadians(raC), Angle::fromRadians(0.5 * (dec0 + dec1)));
}

TractInfo SkyMap::makeTract(int id, int* nxSafe, int* nySafe) const {
    const int nr = config_.numRings;
    const int total = int(numTracts_);
    const double scaleRad = (config_.pixelScaleArcsec * arcseconds).asRadians();
    const double overlapRad = (config_.tractOverlapArcmin * arcminutes).asRadians();
    const int inner = config_.patchInnerDimension;
    const double capEdge = 0.5 * kPi - 0.5 * ringSizeRad_;

    TractInfo t;
    t.id = id;
    t.numRings_ = nr;
    t.ringSizeRad_ = ringSizeRad_;
    t.raOffsetRad_ = raOffsetRad_;
    std::vector<SpherePoint> boundary;
    double raSpan = 0.0;  // radians of RA spanned by the inner region (for the rounding pad below)
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
        boundary.reserve(256);
        for (int k = 0; k < 256; ++k)
            boundary.emplace_back(Angle::fromRadians(kTwoPi * k / 256), Angle::fromRadians(edge));
        raSpan = kTwoPi;
    } else {
        int ring = int(std::upper_bound(ringFirstId_.begin(), ringFirstId_.end(), id) - ringFirstId_.begin()) - 1;
        const int n = ringCount_[ring];
        const int j = id - ringFirstId_[ring];
        t.ring = ring;
        t.indexInRing = j;
        t.numInRing = n;
        const double dec0 = ringSouthEdge(ring, ringSizeRad_), dec1 = dec0 + ringSizeRad_;
        const double width = kTwoPi / n;
        const double raC = raOffsetRad_ + j * width;
        t.center = ringTractCenter(ring, j);
        t.decMinDeg = Angle::fromRadians(dec0).asDegrees();
        t.decMaxDeg = Angle::fromRadians(dec1).asDegrees();
        t.raMinDeg = Angle::fromRadians(raC - 0.5 * width).asDegrees();
        t.raMaxDeg = Angle::fromRadians(raC + 0.5 * width).asDegrees();
        constexpr int kSamples = 65;  // odd: the middle of each edge is sampled
        boundary.reserve(4 * kSamples);
        for (int k = 0; k < kSamples; ++k) {
            double f = double(k) / (kSamples - 1);
            double ra = raC + (f - 0.5) * width, dec = dec0 + f * ringSizeRad_;
            boundary.emplace_back(Angle::fromRadians(ra), Angle::fromRadians(dec0));
            boundary.emplace_back(Angle::fromRadians(ra), Angle::fromRadians(dec1));
            boundary.emplace_back(Angle::fromRadians(raC - 0.5 * width), Angle::fromRadians(dec));
            boundary.emplace_back(Angle::fromRadians(raC + 0.5 * width), Angle::fromRadians(dec));
        }
        raSpan = std::min(width, ringSizeRad_);
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
    if (nxSafe && nySafe) {
        // Other tracts of the ring are rotations of this one: their half extents differ by rounding only
        // (relative 1e-9 covers it, RA offsets far from 0 included), which can only change a ceil() that is
        // within that of an integer.
        const double rel = 1e-9 + 1e-14 * (std::fabs(raOffsetRad_) + kTwoPi) / raSpan;
        *nxSafe = std::max({int(std::ceil(2.0 * halfX * (1.0 + rel) / inner)), config_.numPatchesPerSide, 1});
        *nySafe = std::max({int(std::ceil(2.0 * halfY * (1.0 + rel) / inner)), config_.numPatchesPerSide, 1});
    }
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
    return t;
}

namespace {

double outerRadiusOfGrid(const SpherePoint& center, int nx, int ny, const SkyMapConfig& cfg) {
    const int inner = cfg.patchInnerDimension;
    const Box2I bbox({0, 0}, nx * inner, ny * inner);
    Point2D crpix{0.5 * (bbox.width() - 1), 0.5 * (bbox.height() - 1)};
    auto wcs = Wcs::makeTan(crpix, center, cfg.pixelScaleArcsec * arcseconds, 0.0 * degrees);
    const Box2I outer = bbox.grow(cfg.patchBorder);
    double radius = 0.0;
    for (int k = 0; k < 4; ++k) radius = std::max(radius, center.separation(wcs->pixelToSky(corner(outer, k))).asDegrees());
    return radius;
}

}  // namespace

const SkyMap::Entry* SkyMap::peekEntry(int id) const {
    const Cache::Chunk* c = cache_->chunks[std::size_t(id) >> Cache::kChunkBits].load(std::memory_order_acquire);
    return c ? c->slot[id & (Cache::kChunk - 1)].load(std::memory_order_acquire) : nullptr;
}

const SkyMap::Entry& SkyMap::install(int id, std::unique_ptr<Entry> e) const {
    std::atomic<Cache::Chunk*>& cp = cache_->chunks[std::size_t(id) >> Cache::kChunkBits];
    Cache::Chunk* c = cp.load(std::memory_order_acquire);
    if (!c) {
        auto fresh = std::make_unique<Cache::Chunk>();
        Cache::Chunk* expected = nullptr;
        if (cp.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel, std::memory_order_acquire))
            c = fresh.release();
        else
            c = expected;
    }
    std::atomic<Entry*>& slot = c->slot[id & (Cache::kChunk - 1)];
    Entry* expected = nullptr;
    if (slot.compare_exchange_strong(expected, e.get(), std::memory_order_acq_rel, std::memory_order_acquire)) {
        cache_->built.fetch_add(1, std::memory_order_relaxed);
        return *e.release();
    }
    return *expected;  // another thread built it first (identical contents)
}

const SkyMap::Entry& SkyMap::entry(int id) const {
    if (const Entry* e = peekEntry(id)) return *e;
    return install(id, std::make_unique<Entry>(makeTract(id)));
}

double SkyMap::ringRadius(int slot) const {
    std::atomic<double>& cached = cache_->ringRadius[slot];
    double v = cached.load(std::memory_order_relaxed);
    if (!std::isnan(v)) return v;
    const int nr = config_.numRings;
    if (slot == 0 || slot == nr + 1) {
        v = entry(slot == 0 ? 0 : int(numTracts_) - 1).info.outerRadiusDeg;  // a cap is its own ring: exact
    } else {
        const int id = ringFirstId_[slot - 1];
        int nxSafe = 0, nySafe = 0;
        TractInfo t = makeTract(id, &nxSafe, &nySafe);
        v = t.outerRadiusDeg;
        if (nxSafe != t.numPatchesX || nySafe != t.numPatchesY)
            v = std::max(v, outerRadiusOfGrid(t.center, nxSafe, nySafe, config_));
        v += 1e-9;  // the other tracts of the ring: the same radius up to rounding
        if (!peekEntry(id)) install(id, std::make_unique<Entry>(std::move(t)));
    }
    cached.store(v, std::memory_order_relaxed);  // deterministic: a racing thread stores the same value
    return v;
}

std::size_t SkyMap::numCachedTracts() const { return cache_->built.load(std::memory_order_relaxed); }

const std::vector<TractInfo>& SkyMap::tracts() const {
    std::call_once(cache_->allOnce, [this] {
        std::vector<TractInfo> all;
        all.reserve(numTracts_);
        for (std::size_t id = 0; id < numTracts_; ++id) all.push_back(entry(int(id)).info);
        cache_->all = std::move(all);
    });
    return cache_->all;
}

int SkyMap::numTractsInRing(int ring) const {
    if (ring < 0 || ring >= config_.numRings)
        throw NotFoundError("SkyMap: ring " + std::to_string(ring) + " out of range");
    return ringCount_[ring];
}

const TractInfo& SkyMap::tract(int id) const {
    if (id < 0 || std::size_t(id) >= numTracts_)
        throw NotFoundError("SkyMap: tract " + std::to_string(id) + " out of range [0, " +
                            std::to_string(numTracts_) + ")");
    return entry(id).info;
}

int SkyMap::findTract(const SpherePoint& p) const {
    const int nr = config_.numRings;
    int r = ringOf(p.dec().asRadians(), nr, ringSizeRad_);
    if (r < 0) return 0;
    if (r >= nr) return int(numTracts_) - 1;
    return ringFirstId_[r] + sliceOf(p.ra().asRadians(), ringCount_[r], raOffsetRad_);
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
    const std::size_t nv = polygon.size();
    std::vector<Eigen::Vector3d> vec(nv);
    Eigen::Vector3d sum = Eigen::Vector3d::Zero();
    for (std::size_t i = 0; i < nv; ++i) {
        vec[i] = polygon[i].vector();
        sum += vec[i];
    }
    if (!(sum.norm() > 1e-12)) throw InvalidInputError("SkyMap::findOverlaps: degenerate polygon");
    const SpherePoint c = SpherePoint::fromVector(sum);
    const Eigen::Vector3d cv = c.vector();
    auto separationDeg = [](const Eigen::Vector3d& a, const Eigen::Vector3d& b) {
        return Angle::fromRadians(std::atan2(a.cross(b).norm(), a.dot(b))).asDegrees();
    };
    double rPoly = 0.0;
    for (const auto& v : vec) rPoly = std::max(rPoly, separationDeg(cv, v));
    if (!(rPoly <= 30.0)) throw InvalidInputError("SkyMap::findOverlaps: polygon extends more than 30 deg from its centroid");
    const double eps = 1e-7;  // deg
    const int nr = config_.numRings;
    const int border = config_.patchBorder, inner = config_.patchInnerDimension;
    constexpr double kDegPerRad = 180.0 / kPi;

    std::vector<std::pair<int, std::vector<int>>> result;
    std::vector<Point2D> pix(nv);
    // Tract `id` (tract j of ring `ring`; ring -1 / nr for a cap) whose ring's tracts all have an outer
    // radius <= ringR. An uncached tract out of reach of ringR is rejected without building it (it would
    // fail the exact test below too: fp addition is monotone).
    auto consider = [&](int id, int ring, int j, double ringR) {
        const Entry* e = peekEntry(id);
        if (!e) {
            const SpherePoint center = (ring < 0 || ring >= nr)
                                           ? SpherePoint(0.0 * degrees, Angle::fromRadians(ring < 0 ? -0.5 * kPi : 0.5 * kPi))
                                           : ringTractCenter(ring, j);
            if (separationDeg(cv, center.vector()) > rPoly + ringR + eps) return;
            e = &entry(id);
        }
        const TractInfo& t = e->info;
        const FastTan& f = e->fast;
        const Eigen::Vector3d tc(f.center[0], f.center[1], f.center[2]);
        if (separationDeg(cv, tc) > rPoly + t.outerRadiusDeg + eps) return;
        double x0 = std::numeric_limits<double>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
        for (std::size_t i = 0; i < nv; ++i) {  // Wcs::skyToPixel of a TAN WCS, unrolled
            const Eigen::Vector3d& s = vec[i];
            const double nx = f.rotT[0][0] * s.x() + f.rotT[0][1] * s.y() + f.rotT[0][2] * s.z();
            const double ny = f.rotT[1][0] * s.x() + f.rotT[1][1] * s.y() + f.rotT[1][2] * s.z();
            const double nz = f.rotT[2][0] * s.x() + f.rotT[2][1] * s.y() + f.rotT[2][2] * s.z();
            if (!(nz > 0.0)) return;  // far side: cannot overlap (radius <= 30 deg)
            const double x = kDegPerRad * ny / nz, y = -kDegPerRad * nx / nz;
            const Point2D q{f.cdInv[0][0] * x + f.cdInv[0][1] * y + f.crpix[0],
                            f.cdInv[1][0] * x + f.cdInv[1][1] * y + f.crpix[1]};
            if (!std::isfinite(q.x) || !std::isfinite(q.y)) return;
            pix[i] = q;
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
    const double sinDec = cv.z(), cosDec = std::sqrt(cv.x() * cv.x() + cv.y() * cv.y());
    const double cRa = c.ra().asRadians();
    // Each test below first uses the ring's analytic bound (>= its exact radius; no tract built), then the
    // exact ring radius (lazily computed once per ring).
    if (cDec + 90.0 <= rPoly + ringBoundDeg_[0] + eps && cDec + 90.0 <= rPoly + ringRadius(0) + eps)
        consider(0, -1, 0, ringRadius(0));
    // Only rings whose centre dec is within rPoly + maxBound of the centroid can pass the test below (a
    // margin of 2 rings for rounding).
    const double ringSizeDeg = Angle::fromRadians(ringSizeRad_).asDegrees();
    const double reachAll = rPoly + maxBoundDeg_ + eps;
    const double loF = std::floor((cDec - reachAll + 90.0) / ringSizeDeg) - 3.0;
    const double hiF = std::ceil((cDec + reachAll + 90.0) / ringSizeDeg) + 1.0;
    const int rLo = loF <= 0.0 ? 0 : int(std::min(loF, double(nr)));
    const int rHi = hiF >= double(nr - 1) ? nr - 1 : int(std::max(hiF, -1.0));
    std::vector<int> window;
    for (int r = rLo; r <= rHi; ++r) {
        const double ringDecRad = ringSouthEdge(r, ringSizeRad_) + 0.5 * ringSizeRad_;
        const double ringDec = Angle::fromRadians(ringDecRad).asDegrees();
        if (std::fabs(cDec - ringDec) > rPoly + ringBoundDeg_[r + 1] + eps) continue;
        const double ringR = ringRadius(r + 1);
        const double reach = rPoly + ringR + eps;
        if (std::fabs(cDec - ringDec) > reach) continue;
        // Tract centres of this ring lie on the small circle at ringDec; those within `reach` of c have
        // |RA - RA(c)| <= dAlpha with cos(reach) = sin(dec) sin(ringDec) + cos(dec) cos(ringDec) cos(dAlpha).
        // The window is padded by two tracts; consider() makes the exact test.
        const int n = ringCount_[r];
        const double reachRad = reach / kDegPerRad + 1e-9;
        const double denom = cosDec * std::cos(ringDecRad);
        int half = n;  // tracts on each side of the nearest one; n: the whole ring
        if (reachRad < kPi && denom > 1e-9) {
            const double q = (std::cos(reachRad) - sinDec * std::sin(ringDecRad)) / denom;
            if (q > -1.0) {
                const double dAlpha = std::acos(std::min(q, 1.0));
                half = int(std::floor(dAlpha / (kTwoPi / n))) + 2;
            }
        }
        const int first = ringFirstId_[r];
        if (2 * half + 1 >= n) {
            for (int k = 0; k < n; ++k) consider(first + k, r, k, ringR);
            continue;
        }
        const int j0 = sliceOf(cRa, n, raOffsetRad_);
        window.clear();
        for (int d = -half; d <= half; ++d) window.push_back(((j0 + d) % n + n) % n);
        std::sort(window.begin(), window.end());
        for (int k : window) consider(first + k, r, k, ringR);
    }
    if (90.0 - cDec <= rPoly + ringBoundDeg_[nr + 1] + eps && 90.0 - cDec <= rPoly + ringRadius(nr + 1) + eps)
        consider(int(numTracts_) - 1, nr, 0, ringRadius(nr + 1));
    return result;
}

}  // namespace drp
