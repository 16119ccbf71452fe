#include "io/WcsFits.h"

#include <cmath>

#include "core/Error.h"

namespace drp {

PropertyList wcsToFitsMetadata(const Wcs& wcs, Point2I xy0) {
    PropertyList md = wcs.toFitsMetadata(xy0);
    md.set("DRPCRPX1", wcs.crpix().x, "exact CRPIX1: 0-based parent frame (drp)");
    md.set("DRPCRPX2", wcs.crpix().y, "exact CRPIX2: 0-based parent frame (drp)");
    md.set("DRPCRVR1", wcs.crval().ra().asRadians(), "[rad] exact CRVAL1 (drp)");
    md.set("DRPCRVR2", wcs.crval().dec().asRadians(), "[rad] exact CRVAL2 (drp)");
    return md;
}

std::shared_ptr<const Wcs> wcsFromFitsMetadata(const PropertyList& md, Point2I xy0, std::string* problem) {
    std::shared_ptr<const Wcs> wcs;
    try {
        wcs = Wcs::fromFitsMetadata(md, xy0);
    } catch (const NotFoundError& e) {
        if (problem) *problem = e.message();
        return nullptr;
    }
    if (md.has("DRPCRPX1") && md.has("DRPCRPX2") && md.has("DRPCRVR1") && md.has("DRPCRVR2")) {
        const Point2D crpix{md.getDouble("DRPCRPX1"), md.getDouble("DRPCRPX2")};
        const double ra = md.getDouble("DRPCRVR1"), dec = md.getDouble("DRPCRVR2");
        const bool agree = std::fabs(crpix.x - wcs->crpix().x) < 1e-6 && std::fabs(crpix.y - wcs->crpix().y) < 1e-6 &&
                           std::fabs(ra - wcs->crval().ra().asRadians()) < 1e-12 &&
                           std::fabs(dec - wcs->crval().dec().asRadians()) < 1e-12;
        if (agree) {
            wcs = std::make_shared<const Wcs>(crpix, SpherePoint(Angle::fromRadians(ra), Angle::fromRadians(dec)),
                                              wcs->cd(), wcs->sip());
        }
    }
    return wcs;
}

}  // namespace drp
