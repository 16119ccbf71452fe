#include "stages/measure/PixelFlagsPlugin.h"

#include <cmath>

namespace drp {

namespace {
const char* const kPlaneNames[] = {"BAD", "SAT", "INTRP", "CR", "SUSPECT"};
const char* const kColumnNames[] = {"bad", "saturated", "interpolated", "cr", "suspect"};

MaskPixel bitsOf(const Mask& mask, const char* plane) {
    const auto& planes = mask.planes();
    auto it = planes.find(plane);
    return it == planes.end() ? 0 : MaskPixel(1u << it->second);
}
}  // namespace

PixelFlagsPlugin::PixelFlagsPlugin(Schema& schema, const MeasurementConfig&) {
    offimage_ = schema.addField<bool>("pixelFlags_offimage", "the centroid is outside the image");
    edge_ = schema.addField<bool>("pixelFlags_edge",
                                  "the footprint touches the image boundary, or has EDGE or NO_DATA pixels");
    for (int i = 0; i < kPlanes; ++i) {
        any_[i] = schema.addField<bool>(std::string("pixelFlags_") + kColumnNames[i],
                                        std::string(kPlaneNames[i]) + " pixels in the source's footprint");
    }
    for (int i = 0; i < kPlanes; ++i) {
        center_[i] = schema.addField<bool>(std::string("pixelFlags_") + kColumnNames[i] + "Center",
                                           std::string(kPlaneNames[i]) + " pixels in the 3x3 pixels at the centroid");
    }
}

const std::string& PixelFlagsPlugin::name() const {
    static const std::string n = "pixelFlags";
    return n;
}

void PixelFlagsPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Box2I img = ctx.exposure.bbox();
    const Mask& mask = ctx.exposure.mask();
    MaskPixel bits[kPlanes];
    for (int i = 0; i < kPlanes; ++i) bits[i] = bitsOf(mask, kPlaneNames[i]);
    const MaskPixel edgeBits = bitsOf(mask, "EDGE") | bitsOf(mask, "NO_DATA");

    const Point2D c = ctx.centroid;
    const bool finite = std::isfinite(c.x) && std::isfinite(c.y);
    const Point2I ci{finite ? int(std::floor(c.x + 0.5)) : 0, finite ? int(std::floor(c.y + 0.5)) : 0};
    table.column(offimage_)[row] = !finite || !img.contains(ci);

    // Footprint summaries.
    MaskPixel orAll = 0;
    bool edge = false;
    const Box2I fb = ctx.footprint.bbox();
    if (!fb.empty()) {
        if (!img.contains(fb) || fb.minX() <= img.minX() || fb.minY() <= img.minY() || fb.maxX() >= img.maxX() ||
            fb.maxY() >= img.maxY()) {
            edge = true;
        }
        for (const Span& s : ctx.footprint.spans()) {
            if (s.y < img.minY() || s.y > img.maxY()) continue;
            const int x0 = std::max(s.x0, img.minX()), x1 = std::min(s.x1, img.maxX());
            const MaskPixel* mrow = mask.row(s.y - img.minY());
            for (int x = x0; x <= x1; ++x) orAll |= mrow[x - img.minX()];
        }
    }
    if (orAll & edgeBits) edge = true;
    table.column(edge_)[row] = edge;
    for (int i = 0; i < kPlanes; ++i) table.column(any_[i])[row] = (orAll & bits[i]) != 0;

    // Centre (3x3 around the centroid pixel).
    MaskPixel orCenter = 0;
    if (finite) {
        const Box2I cb = Box2I::fromCorners({ci.x - 1, ci.y - 1}, {ci.x + 1, ci.y + 1}).intersection(img);
        for (int y = cb.minY(); y <= cb.maxY(); ++y)
            for (int x = cb.minX(); x <= cb.maxX(); ++x) orCenter |= mask(x - img.minX(), y - img.minY());
    }
    for (int i = 0; i < kPlanes; ++i) table.column(center_[i])[row] = (orCenter & bits[i]) != 0;
}

void PixelFlagsPlugin::fail(const MeasurementContext&, Table&, std::size_t) const {
    // No values to invalidate: a flag plugin that cannot read the mask leaves its flags unset.
}

}  // namespace drp
