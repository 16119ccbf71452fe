// HtmPixelization: the Hierarchical Triangular Mesh (Szalay, Gray, Kunszt et al. 2007) at one level.
//
// Ids follow the HTM convention used by SDSS and the LSST reference catalogs (sphgeom):
//  * the sphere is split by the planes x = 0, y = 0, z = 0 into 8 root triangles S0..S3, N0..N3 with
//    ids 8..15, built on the vertices v0 = +z, v1 = +x, v2 = +y, v3 = -x, v4 = -y, v5 = -z:
//      S0 = (v1, v5, v2)   S1 = (v2, v5, v3)   S2 = (v3, v5, v4)   S3 = (v4, v5, v1)
//      N0 = (v1, v0, v4)   N1 = (v4, v0, v3)   N2 = (v3, v0, v2)   N3 = (v2, v0, v1)
//  * a triangle (a, b, c) with edge midpoints w0 = mid(b, c), w1 = mid(a, c), w2 = mid(a, b) has the
//    four children 4 id + 0 = (a, w2, w1), + 1 = (b, w0, w2), + 2 = (c, w1, w0), + 3 = (w0, w1, w2);
//  * so a level-L id has 4 + 2 L bits and lies in [8 * 4^L, 16 * 4^L).
// Every triangle is counter-clockwise seen from outside the sphere. Edges are great-circle arcs.
// A point on an edge shared by several trixels is assigned to exactly one of them (deterministically).
#pragma once

#include <Eigen/Core>
#include <Eigen/Geometry>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sky/Angle.h"
#include "sky/SpherePoint.h"

namespace drp {

class HtmPixelization {
public:
    /// Deepest supported level (ids then use 52 bits); level 20 trixels are ~0.3 arcsec across.
    static constexpr int maxLevel = 24;

    /// Throws InvalidInputError unless 0 <= level <= maxLevel.
    explicit HtmPixelization(int level);

    int level() const { return level_; }
    /// Number of trixels at this level: 8 * 4^level.
    std::uint64_t numPixels() const { return std::uint64_t(8) << (2 * level_); }
    /// Smallest and one past the largest id at this level: [8 * 4^level, 16 * 4^level).
    std::uint64_t beginId() const { return std::uint64_t(8) << (2 * level_); }
    std::uint64_t endId() const { return std::uint64_t(16) << (2 * level_); }

    /// The id of the trixel at this level that contains `point`.
    std::uint64_t index(const SpherePoint& point) const;
    std::uint64_t index(const Eigen::Vector3d& unitVector) const;

    /// Ids (sorted, unique) of every trixel at this level that intersects the circle of angular `radius`
    /// about `center`; the test is exact (spherical distance from the centre to the triangle, with a
    /// 1e-12 rad margin), so only trixels within that margin of the circle are added.
    /// A radius <= 0 gives the trixel containing the centre; a radius >= pi gives every trixel.
    std::vector<std::uint64_t> envelope(const SpherePoint& center, Angle radius) const;

    /// Level of an id, or -1 if the value is not a valid HTM id (no leading 1 followed by the 3-bit root
    /// and 2 bits per level, or deeper than maxLevel).
    static int levelOf(std::uint64_t id);
    /// The three vertices (unit vectors, counter-clockwise) of trixel `id` at any level. Throws
    /// InvalidInputError for an invalid id.
    static std::array<Eigen::Vector3d, 3> triangle(std::uint64_t id);
    /// The vertices as sky points.
    static std::array<SpherePoint, 3> vertices(std::uint64_t id);
    /// True if `unitVector` lies inside or on the boundary of trixel `id` (with `tolerance`, radians, of slack).
    static bool contains(std::uint64_t id, const Eigen::Vector3d& unitVector, double tolerance = 0.0);
    /// The conventional name, e.g. "N3021" (root name then one digit per level). InvalidInputError if invalid.
    static std::string asString(std::uint64_t id);
    /// Children ids (4 id .. 4 id + 3). InvalidInputError for an invalid id or one at maxLevel.
    static std::array<std::uint64_t, 4> children(std::uint64_t id);
    /// Parent id; InvalidInputError for a root or invalid id.
    static std::uint64_t parent(std::uint64_t id);

    friend bool operator==(const HtmPixelization&, const HtmPixelization&) = default;

private:
    int level_;
};

}  // namespace drp
