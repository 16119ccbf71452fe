// SkyMap: a "rings" tessellation of the whole sky into tracts and patches, after the description of
// Rubin's RingsSkyMap (lsst.skymap); own code.
//
// Geometry (ringSize = 180 deg / (numRings + 1)):
//  * tract 0 is the south polar cap, dec < -90 + ringSize / 2; the last tract is the north polar cap,
//    dec >= 90 - ringSize / 2. Both cover every RA.
//  * ring i (0 = southernmost) is the declination band [-90 + (i + 1/2) ringSize, -90 + (i + 3/2) ringSize).
//    It holds n_i = floor(2 pi cos(d_i) / ringSize) + 1 tracts, d_i being the ring edge nearest the equator,
//    so every tract is at most ringSize wide (in RA * cos dec) along that edge, and narrower poleward.
//  * tract j of ring i has its centre at (raOffset + j * 360 / n_i, ring centre dec) and its inner region is
//    the RA slice [centre - 180 / n_i, centre + 180 / n_i) of the ring's band. Ids run from the south cap
//    through ring 0 (j = 0..n_0-1), ring 1, ... to the north cap.
//  The inner regions partition the sphere exactly: findTract and TractInfo::containsInner share one
//  arithmetic rule (half-open intervals), so every point is in exactly one inner region, boundaries included.
//  With the defaults (lsst_cells_v1: 120 rings) there are 18938 tracts.
//
// Pixels: each tract has a TAN WCS about its centre (pixelScale, +y north, RA increasing to -x) and a bbox
// [0, numPatchesX * patchInner) x [0, numPatchesY * patchInner) with the tract centre at its middle. The
// bbox holds the inner region grown by tractOverlap on every side (checked on a dense boundary sample,
// with a margin for the gnomonic stretch). Patch (x, y) has the inner box
// [x * patchInner, (x + 1) * patchInner) x [y ...) — inner boxes tile the tract bbox exactly — and the outer
// box = inner box grown by patchBorder on every side (NOT clipped to the tract bbox, as in lsst_cells_v1:
// every outer box is patchInner + 2 border square). Neighbouring outer boxes overlap by 2 * patchBorder.
// numPatchesPerSide > 0 fixes the patch grid (10 x 10 for lsst_cells_v1) unless a tract needs more, in
// which case it gets the derived number; 0 always derives it: ceil(required extent / patchInner) per axis.
// Patch index = y * numPatchesX + x.
//
// Laziness: construction is O(numRings) (ring tables, plus a conservative analytic bound per ring on the
// tract extent, used to validate the config and to pre-select rings in findOverlaps); a tract's TractInfo
// (with its Wcs) and findOverlaps' per-tract projection table are built on first use and cached for the
// map's lifetime. The cache is lock-free (a lazily allocated chunked array of atomic pointers; a race may
// build a tract twice, one copy wins), so every const method may be called concurrently, and references
// returned by tract() stay valid while the map lives. Every tract is built by the same code as when the map
// built them all eagerly, so results do not depend on the order of calls or on what is cached. All tracts
// of a ring are congruent (rotations about the pole), so a config whose tracts would not fit (more than
// 80 deg from the centre, or more pixels than an int holds) is still rejected by the constructor, from
// the ring's first tract; only a ring within rounding error of those limits could instead throw the same
// ConfigError from the first call that builds one of its tracts.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "core/Box.h"
#include "core/Wcs.h"
#include "sky/SpherePoint.h"

namespace drp {

/// Parameters of a rings sky map; the defaults are those of Rubin's lsst_cells_v1.
struct SkyMapConfig {
    int numRings = 120;               ///< declination rings between the polar caps; [1, 10000]
    double pixelScaleArcsec = 0.2;    ///< tract pixel scale, arcsec/pixel; (0, 3600]
    double tractOverlapArcmin = 1.0;  ///< minimum sky margin each tract bbox holds beyond its inner region, arcmin; >= 0
    int patchInnerDimension = 3000;   ///< side of a patch's inner box, pixels; >= 1
    int patchBorder = 200;            ///< patch border on every side, pixels; >= 0 (outer = inner + 2 border)
    int numPatchesPerSide = 10;       ///< fixed patch grid per tract (a tract that needs more gets more); 0 = derived; >= 0
    double raOffsetDeg = 0.0;         ///< RA of the centre of tract 0 of every ring, degrees; finite

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const SkyMapConfig&, const SkyMapConfig&) = default;
};

/// One patch of a tract: grid position, sequential index and pixel boxes in the tract frame.
struct PatchInfo {
    int x = 0;          ///< column in the tract's patch grid
    int y = 0;          ///< row
    int index = 0;      ///< y * numPatchesX + x
    Box2I innerBBox;    ///< patchInner square; the inner boxes tile the tract bbox
    Box2I outerBBox;    ///< innerBBox grown by patchBorder (may extend beyond the tract bbox)
    friend bool operator==(const PatchInfo&, const PatchInfo&) = default;
};

/// One tract: centre, WCS, pixel bbox and its inner sky region.
struct TractInfo {
    int id = 0;
    SpherePoint center;
    std::shared_ptr<const Wcs> wcs;
    Box2I bbox;                 ///< [0, numPatchesX * patchInner) x [0, numPatchesY * patchInner)
    double decMinDeg = 0;       ///< inner region: dec in [decMin, decMax) (south cap: [-90, ...), north cap: [..., 90])
    double decMaxDeg = 0;
    double raMinDeg = 0;        ///< inner region: RA in [raMin, raMax) modulo 360 (raMin may be < 0); caps: [0, 360)
    double raMaxDeg = 0;
    int numPatchesX = 0;
    int numPatchesY = 0;
    int ring = 0;               ///< -1 south cap, numRings north cap, else the ring index
    int indexInRing = 0;        ///< j in [0, numInRing)
    int numInRing = 1;          ///< tracts in this ring (1 for a cap)
    double outerRadiusDeg = 0;  ///< radius about `center` of a circle holding every patch outer box

    /// True if `p` lies in this tract's inner region (same rule as SkyMap::findTract).
    bool containsInner(const SpherePoint& p) const;
    int numPatches() const { return numPatchesX * numPatchesY; }

    // Ring layout shared by every tract of a map (needed by containsInner).
    int numRings_ = 0;
    double ringSizeRad_ = 0;
    double raOffsetRad_ = 0;
};

class SkyMap {
public:
    /// Builds the ring tables (O(numRings)); tracts are built on first use. Validates the config;
    /// ConfigError if a tract would reach more than 80 deg from its centre or its pixel grid would not fit an int.
    explicit SkyMap(const SkyMapConfig& config = {});
    /// A copy shares nothing: it has the same layout and an empty tract cache.
    SkyMap(const SkyMap& other);
    SkyMap& operator=(const SkyMap& other);
    /// A moved-from map may only be destroyed or assigned to.
    SkyMap(SkyMap&&) noexcept;
    SkyMap& operator=(SkyMap&&) noexcept;
    ~SkyMap();

    const SkyMapConfig& config() const { return config_; }
    std::size_t numTracts() const { return numTracts_; }
    int numRings() const { return config_.numRings; }
    /// Declination height of a ring (and diameter of a polar cap).
    Angle ringSize() const { return Angle::fromRadians(ringSizeRad_); }
    /// Tracts in ring i (0 <= i < numRings).
    int numTractsInRing(int ring) const;
    /// Throws NotFoundError for an id out of range. Builds the tract on first use (tens of us); the
    /// reference stays valid for the map's lifetime. Thread-safe.
    const TractInfo& tract(int id) const;
    /// Every tract, in id order: EXPENSIVE — the first call builds all numTracts() tracts and keeps a copy
    /// (~1 KB and tens of us each: fine for the default 18938 tracts, minutes and GBs for thousands of
    /// rings). For tests and small maps; otherwise loop `for (id < numTracts()) tract(id)` over the ids you
    /// need. Thread-safe; equal values, but not the same objects, as tract(id).
    const std::vector<TractInfo>& tracts() const;
    /// Tracts built so far (the cache size; for tests and benchmarks).
    std::size_t numCachedTracts() const;

    /// The unique tract whose inner region holds `p`. Pure arithmetic: builds no tract.
    int findTract(const SpherePoint& p) const;
    /// The patch of `tract` whose inner box holds the pixel of `p`. Throws NotFoundError if `p` projects
    /// outside the tract bbox (never the case for a point of the tract's inner region or its overlap).
    PatchInfo findPatch(const TractInfo& tract, const SpherePoint& p) const;
    /// Patch by grid position / by index; NotFoundError if out of range.
    PatchInfo patch(const TractInfo& tract, int x, int y) const;
    PatchInfo patch(const TractInfo& tract, int index) const;

    /// Corners of the inner region (ring tracts: (raMin, decMin), (raMax, decMin), (raMax, decMax),
    /// (raMin, decMax); the edges are lines of constant RA and dec, not great circles). Caps: 8 points
    /// evenly spaced in RA on the cap boundary.
    std::vector<SpherePoint> tractPolygon(int id) const;
    /// Sky positions of the 4 corners (pixel edges) of a patch's inner (or outer) box, counter-clockwise in pixels.
    std::vector<SpherePoint> patchPolygon(const TractInfo& tract, const PatchInfo& patch, bool outer = false) const;

    /// Tracts (ascending id) with the patch indices (ascending) whose OUTER box overlaps a visit-detector
    /// polygon: its sky vertices (>= 3, great-circle edges, at most 30 deg from their centroid). Exact for a
    /// convex polygon: great circles are straight lines in every tract's TAN plane, so each tract gets the
    /// polygon in pixels and a separating-axis test against the patch boxes. A non-convex polygon is
    /// replaced by its pixel bounding box (conservative). Tracts are pre-selected by bounding circles; only
    /// the rings within reach are visited, and in each ring only the RA window of tract centres that can be
    /// within reach is examined (a few us per detector polygon on lsst_cells_v1 once the tracts it touches
    /// are cached; a tract is built only if its centre is within reach of the ring's bounding radius).
    std::vector<std::pair<int, std::vector<int>>> findOverlaps(const std::vector<SpherePoint>& polygon) const;

private:
    struct FastTan;
    struct Entry;
    struct Cache;
    /// The tract exactly as the eager constructor built it (throws ConfigError like it). If nxSafe/nySafe are
    /// given, they receive patch grid sizes >= that of every tract of the same ring (rounding-safe).
    TractInfo makeTract(int id, int* nxSafe = nullptr, int* nySafe = nullptr) const;
    /// Cached entry of a tract, built on first use; peekEntry returns nullptr if not built yet.
    const Entry& entry(int id) const;
    const Entry* peekEntry(int id) const;
    const Entry& install(int id, std::unique_ptr<Entry> e) const;
    /// Max outer radius (deg) of the tracts of a ring slot (0 south cap, 1..numRings rings, numRings+1 north
    /// cap): exact for the caps, the ring's first tract (rounding-safe grid) + 1e-9 deg for a ring. Lazy, cached.
    double ringRadius(int slot) const;
    /// Centre of tract j of ring `ring`, computed exactly as makeTract does (bit-identical to tract(id).center).
    SpherePoint ringTractCenter(int ring, int j) const;

    SkyMapConfig config_;
    double ringSizeRad_ = 0;
    double raOffsetRad_ = 0;
    std::size_t numTracts_ = 0;
    std::vector<int> ringFirstId_;         // id of tract 0 of each ring
    std::vector<int> ringCount_;           // tracts per ring
    std::vector<double> ringBoundDeg_;     // per ring slot: analytic upper bound of the tracts' outer radius
    double maxBoundDeg_ = 0;               // max of ringBoundDeg_
    std::unique_ptr<Cache> cache_;
};
}  // namespace drp
