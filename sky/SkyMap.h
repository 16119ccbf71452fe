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
    /// Builds every tract (validates the config; ConfigError if a tract's pixel grid would not fit an int).
    explicit SkyMap(const SkyMapConfig& config = {});

    const SkyMapConfig& config() const { return config_; }
    std::size_t numTracts() const { return tracts_.size(); }
    int numRings() const { return config_.numRings; }
    /// Declination height of a ring (and diameter of a polar cap).
    Angle ringSize() const { return Angle::fromRadians(ringSizeRad_); }
    /// Tracts in ring i (0 <= i < numRings).
    int numTractsInRing(int ring) const;
    /// Throws NotFoundError for an id out of range.
    const TractInfo& tract(int id) const;
    const std::vector<TractInfo>& tracts() const { return tracts_; }

    /// The unique tract whose inner region holds `p`.
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
    /// replaced by its pixel bounding box (conservative). Tracts are pre-selected by bounding circles.
    std::vector<std::pair<int, std::vector<int>>> findOverlaps(const std::vector<SpherePoint>& polygon) const;

private:
    SkyMapConfig config_;
    double ringSizeRad_ = 0;
    std::vector<int> ringFirstId_;         // id of tract 0 of each ring
    std::vector<int> ringCount_;           // tracts per ring
    std::vector<double> ringMaxRadiusDeg_; // per ring (index 0 south cap, 1..numRings rings, last north cap)
    std::vector<TractInfo> tracts_;
};

}  // namespace drp
