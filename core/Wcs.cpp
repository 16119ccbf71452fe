// FITS TAN (gnomonic) projection with SIP distortion (Calabretta & Greisen 2002; Shupe et al. 2005).
//
// Chain, pixel to sky:
//   (u, v)   = pixel - crpix                               (pixel offsets, 0-based parent frame)
//   (u', v') = (u + A(u, v), v + B(u, v))                   (SIP, if any)
//   (x, y)   = CD (u', v')                                  (intermediate world coordinates, degrees)
//   n        ~ (-y, x, 180/pi)                              (TAN: native direction, native pole at crval)
//   c        = R n                                          (R: native -> celestial, LONPOLE = 180 deg)
// Sky to pixel runs the chain backwards; the SIP step is inverted by Newton's method with the analytic
// Jacobian of the polynomials (AP/BP, when given, only supply the starting point).
#include "core/Wcs.h"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "core/Error.h"

namespace drp {

SipPolynomials SipPolynomials::radialCubic(double kappa) {
    SipPolynomials sip;
    sip.order = 3;
    sip.a = Eigen::MatrixXd::Zero(4, 4);
    sip.b = Eigen::MatrixXd::Zero(4, 4);
    sip.a(3, 0) = kappa;
    sip.a(1, 2) = kappa;
    sip.b(2, 1) = kappa;
    sip.b(0, 3) = kappa;
    return sip;
}

namespace {

constexpr double kDegPerRad = 180.0 / std::numbers::pi;
constexpr double kRadPerDeg = std::numbers::pi / 180.0;
constexpr int kMaxTerms = Wcs::maxSipOrder + 1;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------------------
// SIP polynomial evaluation: sum over p + q <= order of c(p, q) u^p v^q.

struct Powers {
    std::array<double, kMaxTerms> u, v;
    Powers(double uu, double vv, int order) {
        u[0] = v[0] = 1.0;
        for (int i = 1; i <= order; ++i) {
            u[i] = u[i - 1] * uu;
            v[i] = v[i - 1] * vv;
        }
    }
};

/// Value of the polynomial at (u, v), by Horner's scheme in v (inner) and u (outer).
double polyValue(const Eigen::MatrixXd& c, int order, double u, double v) {
    const double* k = c.data();
    const Eigen::Index ld = c.rows();  // column-major: c(p, q) = k[p + q * ld]
    double value = 0.0;
    for (int p = order; p >= 0; --p) {
        double inner = 0.0;
        for (int q = order - p; q >= 0; --q) inner = inner * v + k[p + q * ld];
        value = value * u + inner;
    }
    return value;
}

/// Value and partial derivatives (d/du, d/dv), by Horner's scheme.
void polyValueAndGradient(const Eigen::MatrixXd& c, int order, double u, double v, double& value, double& dU,
                          double& dV) {
    const double* k = c.data();
    const Eigen::Index ld = c.rows();
    value = dU = dV = 0.0;
    for (int p = order; p >= 0; --p) {
        double inner = 0.0, innerDv = 0.0;
        for (int q = order - p; q >= 0; --q) {
            innerDv = innerDv * v + inner;
            inner = inner * v + k[p + q * ld];
        }
        dU = dU * u + value;
        value = value * u + inner;
        dV = dV * u + innerDv;
    }
}

/// Residual r = (u + A - tu, v + B - tv) and Jacobian J = I + dA,dB/du,dv of the forward SIP map at (u, v).
struct SipEval {
    double ru, rv, j00, j01, j10, j11;
};

SipEval evalSip(const SipPolynomials& s, double u, double v, double tu, double tv) {
    double a, au, av, b, bu, bv;
    polyValueAndGradient(s.a, s.order, u, v, a, au, av);
    polyValueAndGradient(s.b, s.order, u, v, b, bu, bv);
    return {u + a - tu, v + b - tv, 1.0 + au, av, bu, 1.0 + bv};
}

/// Solve u + A(u, v) = tu, v + B(u, v) = tv by damped Newton. Returns false if it does not converge.
bool invertSip(const SipPolynomials& s, double tu, double tv, double& u, double& v) {
    u = tu;
    v = tv;
    if (s.inverseOrder > 0) {
        u += polyValue(s.ap, s.inverseOrder, tu, tv);
        v += polyValue(s.bp, s.inverseOrder, tu, tv);
    }
    constexpr int maxIterations = 60;
    SipEval e = evalSip(s, u, v, tu, tv);
    double prevStep = -1.0;  // the last full Newton step (-1: none, or it was damped)
    for (int it = 0; it < maxIterations; ++it) {
        double det = e.j00 * e.j11 - e.j01 * e.j10;
        if (!std::isfinite(det) || det == 0.0) return false;
        double su = (e.j11 * e.ru - e.j01 * e.rv) / det;
        double sv = (-e.j10 * e.ru + e.j00 * e.rv) / det;
        double stepNorm = std::sqrt(su * su + sv * sv);
        if (!std::isfinite(stepNorm)) return false;
        // Converged when the error left after this step is below the tolerance: either the step itself is
        // that small, or Newton's quadratic convergence (error ~ C step^2, with C measured from the last two
        // undamped steps, times a safety factor of 10) says so. The latter saves one evaluation.
        const double tol = 1e-13 * (1.0 + std::fabs(u) + std::fabs(v));
        const bool quadratic = prevStep > 0.0 && 10.0 * (stepNorm / (prevStep * prevStep)) * stepNorm * stepNorm <= tol;
        if (stepNorm <= tol || quadratic) {
            u -= su;
            v -= sv;
            return true;
        }
        // Backtrack while the residual grows (keeps far-off points from diverging).
        double r2 = e.ru * e.ru + e.rv * e.rv;
        double lambda = 1.0;
        double un, vn;
        SipEval en;
        for (;;) {
            un = u - lambda * su;
            vn = v - lambda * sv;
            en = evalSip(s, un, vn, tu, tv);
            double rn2 = en.ru * en.ru + en.rv * en.rv;
            if (rn2 <= r2 || lambda < 1.0 / 1024.0) break;
            lambda *= 0.5;
        }
        u = un;
        v = vn;
        e = en;
        prevStep = lambda == 1.0 ? stepNorm : -1.0;
    }
    return false;
}

// ---------------------------------------------------------------------------------------------------------
// Validation.

void checkPolynomial(const Eigen::MatrixXd& c, int order, const char* name) {
    if (order < 1 || order > Wcs::maxSipOrder) {
        std::ostringstream os;
        os << "SIP " << name << " order " << order << " is outside [1, " << Wcs::maxSipOrder << "]";
        throw InvalidInputError(os.str());
    }
    if (c.rows() != order + 1 || c.cols() != order + 1) {
        std::ostringstream os;
        os << "SIP " << name << " matrix is " << c.rows() << "x" << c.cols() << ", expected " << order + 1 << "x"
           << order + 1;
        throw InvalidInputError(os.str());
    }
    for (int p = 0; p <= order; ++p) {
        for (int q = 0; q <= order; ++q) {
            if (!std::isfinite(c(p, q))) throw InvalidInputError(std::string("SIP ") + name + " has a non-finite coefficient");
            if (p + q > order && c(p, q) != 0.0) {
                std::ostringstream os;
                os << "SIP " << name << " coefficient (" << p << "," << q << ") is beyond the order " << order;
                throw InvalidInputError(os.str());
            }
        }
    }
}

/// Validated SIP with the conventions: no forward order -> no SIP; no inverse order -> empty AP/BP.
std::optional<SipPolynomials> normaliseSip(std::optional<SipPolynomials> sip) {
    if (!sip || sip->order == 0) return std::nullopt;
    checkPolynomial(sip->a, sip->order, "A");
    checkPolynomial(sip->b, sip->order, "B");
    if (sip->inverseOrder == 0) {
        sip->ap.resize(0, 0);
        sip->bp.resize(0, 0);
    } else {
        checkPolynomial(sip->ap, sip->inverseOrder, "AP");
        checkPolynomial(sip->bp, sip->inverseOrder, "BP");
    }
    return sip;
}

/// cos and sin of an angle in degrees, exact at multiples of 90 degrees.
void cosSinDeg(double deg, double& c, double& s) {
    double r = std::fmod(deg, 360.0);
    if (r < 0) r += 360.0;
    if (r == 0.0) { c = 1; s = 0; return; }
    if (r == 90.0) { c = 0; s = 1; return; }
    if (r == 180.0) { c = -1; s = 0; return; }
    if (r == 270.0) { c = 0; s = -1; return; }
    c = std::cos(r * kRadPerDeg);
    s = std::sin(r * kRadPerDeg);
}

// ---------------------------------------------------------------------------------------------------------
// FITS header helpers.

std::string trimUpper(std::string s) {
    auto notSpace = [](unsigned char ch) { return !std::isspace(ch); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
    s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
    for (auto& ch : s) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    return s;
}

void setDouble(PropertyList& md, const std::string& key, double value, const std::string& comment = {}) {
    md.set(key, PropertyList::Value(value), comment);
}

/// An integer keyword that some writers store as a float (e.g. A_ORDER = 3.0).
int readOrder(const PropertyList& md, const std::string& key) {
    const auto& v = md.get(key);
    double d;
    if (auto i = std::get_if<std::int64_t>(&v)) d = double(*i);
    else if (auto f = std::get_if<double>(&v)) d = *f;
    else throw InvalidInputError("FITS keyword " + key + " is not a number");
    if (!(d == std::floor(d)) || d < 0 || d > Wcs::maxSipOrder) {
        std::ostringstream os;
        os << "FITS keyword " << key << " = " << d << " is not an order in [0, " << Wcs::maxSipOrder << "]";
        throw InvalidInputError(os.str());
    }
    return int(d);
}

Eigen::MatrixXd readPolynomial(const PropertyList& md, const std::string& prefix, int order) {
    Eigen::MatrixXd c = Eigen::MatrixXd::Zero(order + 1, order + 1);
    for (int p = 0; p <= order; ++p)
        for (int q = 0; p + q <= order; ++q)
            c(p, q) = md.getDouble(prefix + "_" + std::to_string(p) + "_" + std::to_string(q), 0.0);
    return c;
}

void writePolynomial(PropertyList& md, const std::string& prefix, int order, const Eigen::MatrixXd& c,
                     const std::string& what) {
    md.set(prefix + "_ORDER", order, what + " polynomial order");
    for (int p = 0; p <= order; ++p)
        for (int q = 0; p + q <= order; ++q)
            if (c(p, q) != 0.0) setDouble(md, prefix + "_" + std::to_string(p) + "_" + std::to_string(q), c(p, q));
}

struct CType {
    std::string coord;   // "RA", "DEC", "GLON", "LINEAR", ...
    std::string proj;    // "TAN", "TPV", ... ("" if not celestial)
    std::string suffix;  // "SIP" or ""
    bool isLongitude = false;
    bool isLatitude = false;
};

CType parseCtype(const std::string& raw) {
    CType t;
    std::string s = trimUpper(raw);
    if (s.size() < 8 || s[4] != '-') {
        t.coord = s;
        return t;
    }
    std::string head = s.substr(0, 4);
    head.erase(head.find_last_not_of('-') + 1);
    t.coord = head;
    t.proj = s.substr(5, 3);
    if (s.size() > 8) t.suffix = s[8] == '-' ? s.substr(9) : s.substr(8);
    auto endsWith = [&](const char* e) {
        std::string x(e);
        return head.size() >= x.size() && head.compare(head.size() - x.size(), x.size(), x) == 0;
    };
    t.isLongitude = head == "RA" || endsWith("LON") || (head.size() == 4 && head.substr(2) == "LN");
    t.isLatitude = head == "DEC" || endsWith("LAT") || (head.size() == 4 && head.substr(2) == "LT");
    if (!t.isLongitude && !t.isLatitude) t.proj.clear(), t.suffix.clear();
    return t;
}

std::shared_ptr<const Wcs> parseFits(const PropertyList& md, Point2I xy0) {
    if (!md.has("CTYPE1") && !md.has("CTYPE2")) throw NotFoundError("no celestial WCS in the header (no CTYPE1/CTYPE2)");
    CType t1 = parseCtype(md.getString("CTYPE1", "")), t2 = parseCtype(md.getString("CTYPE2", ""));
    bool cel1 = t1.isLongitude || t1.isLatitude, cel2 = t2.isLongitude || t2.isLatitude;
    if (!cel1 && !cel2) throw NotFoundError("no celestial WCS in the header (CTYPE1 '" + t1.coord + "', CTYPE2 '" + t2.coord + "')");
    if (!cel1 || !cel2 || t1.isLongitude == t2.isLongitude)
        throw InvalidInputError("axes 1 and 2 are not a celestial longitude/latitude pair (CTYPE1 '" + t1.coord +
                                "', CTYPE2 '" + t2.coord + "')");
    const int lonAxis = t1.isLongitude ? 1 : 2, latAxis = 3 - lonAxis;
    const CType& lon = lonAxis == 1 ? t1 : t2;
    const CType& lat = lonAxis == 1 ? t2 : t1;
    if (lon.coord != "RA" || lat.coord != "DEC")
        throw InvalidInputError("only equatorial (RA/DEC) celestial coordinates are supported, not " + lon.coord + "/" + lat.coord);
    if (lon.proj != "TAN" || lat.proj != "TAN" || lon.suffix != lat.suffix || (!lon.suffix.empty() && lon.suffix != "SIP"))
        throw InvalidInputError("projection '" + lon.proj + (lon.suffix.empty() ? "" : "-" + lon.suffix) +
                                "' is not supported (only TAN and TAN-SIP)");
    const bool sipCtype = lon.suffix == "SIP";
    const std::string li = std::to_string(lonAxis), bi = std::to_string(latAxis);

    std::string radesys = trimUpper(md.getString("RADESYS", md.getString("RADECSYS", "ICRS")));
    if (radesys != "ICRS" && radesys != "FK5")
        throw InvalidInputError("celestial reference frame RADESYS '" + radesys + "' is not supported (ICRS, FK5)");
    for (const char* key : {"CUNIT1", "CUNIT2"}) {
        if (md.has(key)) {
            std::string unit = trimUpper(md.getString(key));
            if (!unit.empty() && unit != "DEG") throw InvalidInputError(std::string(key) + " '" + unit + "' is not supported (deg)");
        }
    }

    // Projection parameters: TAN has none; non-default ones mean another convention (TPV-style distortion).
    double lonpole = kNaN;
    for (const auto& key : md.keys()) {
        if (key.size() < 5 || key[0] != 'P' || key[1] != 'V' || key[3] != '_') continue;
        if (key[2] != '1' && key[2] != '2') continue;
        if (!std::all_of(key.begin() + 4, key.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); }))
            continue;  // an alternate WCS (PV1_1A) or another convention
        int m = std::stoi(key.substr(4));
        double value = md.getDouble(key);
        bool onLon = key[2] == li[0];
        bool ok = onLon ? (m == 0 || (m == 1 && value == 0.0) || (m == 2 && value == 90.0) || m == 3 || m == 4)
                        : value == 0.0;
        if (!ok) throw InvalidInputError("projection parameter " + key + " is not supported (TPV-style distortion?)");
        if (onLon && m == 3) lonpole = value;
    }

    // Linear transformation, world axis i (rows) x pixel axis j (columns).
    Eigen::Matrix2d cd;
    bool hasCd = md.has("CD1_1") || md.has("CD1_2") || md.has("CD2_1") || md.has("CD2_2");
    if (hasCd) {
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) cd(i, j) = md.getDouble("CD" + std::to_string(i + 1) + "_" + std::to_string(j + 1), 0.0);
    } else {
        double cdelt[2] = {md.getDouble("CDELT1", 1.0), md.getDouble("CDELT2", 1.0)};
        bool hasPc = md.has("PC1_1") || md.has("PC1_2") || md.has("PC2_1") || md.has("PC2_2");
        if (hasPc) {
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j)
                    cd(i, j) = cdelt[i] * md.getDouble("PC" + std::to_string(i + 1) + "_" + std::to_string(j + 1), i == j ? 1.0 : 0.0);
        } else if (md.has("CROTA" + bi) || md.has("CROTA" + li)) {
            // CROTA belongs to the latitude axis (wcslib accepts it on either).
            double c, s;
            cosSinDeg(md.getDouble("CROTA" + bi, md.getDouble("CROTA" + li, 0.0)), c, s);
            const int L = lonAxis - 1, B = latAxis - 1;
            cd(L, L) = cdelt[L] * c;
            cd(L, B) = -cdelt[B] * s;
            cd(B, L) = cdelt[L] * s;
            cd(B, B) = cdelt[B] * c;
        } else {
            cd << cdelt[0], 0.0, 0.0, cdelt[1];
        }
    }
    if (lonAxis == 2) cd.row(0).swap(cd.row(1));

    double raDeg = md.getDouble("CRVAL" + li, 0.0), decDeg = md.getDouble("CRVAL" + bi, 0.0);
    if (!std::isfinite(raDeg) || !std::isfinite(decDeg) || std::fabs(decDeg) > 90.0)
        throw InvalidInputError("invalid CRVAL");
    SpherePoint crval(raDeg * degrees, decDeg * degrees);

    // LONPOLE: for a zenithal projection it only rotates the intermediate plane about crpix, so fold it into CD.
    if (md.has("LONPOLE")) lonpole = md.getDouble("LONPOLE");
    if (std::isnan(lonpole)) lonpole = decDeg < 90.0 ? 180.0 : 0.0;
    if (!std::isfinite(lonpole)) throw InvalidInputError("invalid LONPOLE");
    if (lonpole != 180.0) {
        double c, s;
        cosSinDeg(lonpole - 180.0, c, s);
        Eigen::Matrix2d rot;
        rot << c, s, -s, c;
        cd = (rot * cd).eval();
    }

    Point2D crpix{md.getDouble("CRPIX1", 0.0) + (xy0.x - 1), md.getDouble("CRPIX2", 0.0) + (xy0.y - 1)};

    std::optional<SipPolynomials> sip;
    if (sipCtype) {
        if (!md.has("A_ORDER") || !md.has("B_ORDER")) throw InvalidInputError("CTYPE says TAN-SIP but A_ORDER/B_ORDER are missing");
        SipPolynomials s;
        s.order = std::max(readOrder(md, "A_ORDER"), readOrder(md, "B_ORDER"));
        if (s.order > 0) {
            s.a = readPolynomial(md, "A", s.order);
            s.b = readPolynomial(md, "B", s.order);
            if (md.has("AP_ORDER") && md.has("BP_ORDER")) {
                s.inverseOrder = std::max(readOrder(md, "AP_ORDER"), readOrder(md, "BP_ORDER"));
                if (s.inverseOrder > 0) {
                    s.ap = readPolynomial(md, "AP", s.inverseOrder);
                    s.bp = readPolynomial(md, "BP", s.inverseOrder);
                }
            }
            sip = std::move(s);
        }
    }
    return std::make_shared<const Wcs>(crpix, crval, cd, std::move(sip));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

Wcs::Wcs(Point2D crpix, SpherePoint crval, const Eigen::Matrix2d& cd, std::optional<SipPolynomials> sip)
    : crpix_(crpix), crval_(crval), cd_(cd), sip_(normaliseSip(std::move(sip))) {
    if (!std::isfinite(crpix.x) || !std::isfinite(crpix.y)) throw InvalidInputError("Wcs: CRPIX is not finite");
    if (!cd.allFinite()) throw InvalidInputError("Wcs: the CD matrix has non-finite elements");
    double det = cd.determinant();
    double scale2 = cd.cwiseAbs2().sum();
    if (!(std::fabs(det) > 1e-14 * scale2)) throw InvalidInputError("Wcs: the CD matrix is singular");
    cdInverse_ = cd.inverse();
    double a = crval.ra().asRadians(), d = crval.dec().asRadians();
    double ca = std::cos(a), sa = std::sin(a), cdl = std::cos(d), sdl = std::sin(d);
    Eigen::Matrix3d rz, m1;
    rz << ca, -sa, 0, sa, ca, 0, 0, 0, 1;
    m1 << sdl, 0, cdl, 0, 1, 0, -cdl, 0, sdl;
    rotation_ = rz * m1;
}

std::shared_ptr<const Wcs> Wcs::makeTan(Point2D crpix, SpherePoint crval, Angle scale, Angle rotation, bool flipX) {
    double s = scale.asDegrees();
    if (!(s > 0.0) || !std::isfinite(s)) throw InvalidInputError("Wcs::makeTan: the pixel scale must be positive");
    double c = std::cos(rotation.asRadians()), sn = std::sin(rotation.asRadians());
    Eigen::Matrix2d cd;
    // Columns are the sky directions of +x and +y: +y at position angle `rotation`, +x 90 deg west
    // (flipX, east to the left) or east of it; (x, y) intermediate = (east, north).
    if (flipX)
        cd << -s * c, s * sn, s * sn, s * c;
    else
        cd << s * c, s * sn, -s * sn, s * c;
    return std::make_shared<const Wcs>(crpix, crval, cd);
}

SpherePoint Wcs::pixelToSky(Point2D pixel) const {
    double u = pixel.x - crpix_.x, v = pixel.y - crpix_.y;
    if (hasSip()) {
        double du = polyValue(sip_->a, sip_->order, u, v), dv = polyValue(sip_->b, sip_->order, u, v);
        u += du;
        v += dv;
    }
    double x = cd_(0, 0) * u + cd_(0, 1) * v, y = cd_(1, 0) * u + cd_(1, 1) * v;
    return SpherePoint::fromVector(rotation_ * Eigen::Vector3d(-y, x, kDegPerRad));
}

Point2D Wcs::skyToPixel(const SpherePoint& sky) const {
    Eigen::Vector3d n = rotation_.transpose() * sky.vector();
    if (!(n.z() > 0.0)) return {kNaN, kNaN};
    double x = kDegPerRad * n.y() / n.z(), y = -kDegPerRad * n.x() / n.z();
    double tu = cdInverse_(0, 0) * x + cdInverse_(0, 1) * y, tv = cdInverse_(1, 0) * x + cdInverse_(1, 1) * y;
    if (!hasSip()) return {tu + crpix_.x, tv + crpix_.y};
    double u, v;
    if (!invertSip(*sip_, tu, tv, u, v)) return {kNaN, kNaN};
    return {u + crpix_.x, v + crpix_.y};
}

std::vector<SpherePoint> Wcs::pixelToSky(const std::vector<Point2D>& pixels) const {
    std::vector<SpherePoint> out;
    out.reserve(pixels.size());
    for (const auto& p : pixels) out.push_back(pixelToSky(p));
    return out;
}

std::vector<Point2D> Wcs::skyToPixel(const std::vector<SpherePoint>& points) const {
    std::vector<Point2D> out;
    out.reserve(points.size());
    for (const auto& s : points) out.push_back(skyToPixel(s));
    return out;
}

Angle Wcs::pixelScale(Point2D pixel) const {
    double u = pixel.x - crpix_.x, v = pixel.y - crpix_.y;
    double jacobian = 1.0;
    if (hasSip()) {
        SipEval e = evalSip(*sip_, u, v, 0.0, 0.0);
        u = e.ru;
        v = e.rv;
        jacobian = e.j00 * e.j11 - e.j01 * e.j10;
    }
    double x = (cd_(0, 0) * u + cd_(0, 1) * v) * kRadPerDeg, y = (cd_(1, 0) * u + cd_(1, 1) * v) * kRadPerDeg;
    // Gnomonic area element: dOmega = dx dy / (1 + x^2 + y^2)^(3/2).
    double area = std::fabs(cd_.determinant() * jacobian) * kRadPerDeg * kRadPerDeg / std::pow(1.0 + x * x + y * y, 1.5);
    return Angle::fromRadians(std::sqrt(area));
}

PropertyList Wcs::toFitsMetadata(Point2I xy0) const {
    PropertyList md;
    const bool sip = hasSip();
    md.set("WCSAXES", 2, "number of WCS axes");
    md.set("CTYPE1", sip ? "RA---TAN-SIP" : "RA---TAN", "gnomonic projection" + std::string(sip ? " with SIP distortion" : ""));
    md.set("CTYPE2", sip ? "DEC--TAN-SIP" : "DEC--TAN", "gnomonic projection" + std::string(sip ? " with SIP distortion" : ""));
    md.set("CUNIT1", "deg", "unit of CRVAL1 and CD1_j");
    md.set("CUNIT2", "deg", "unit of CRVAL2 and CD2_j");
    setDouble(md, "CRPIX1", crpix_.x - (xy0.x - 1), "reference pixel, 1-based in this image");
    setDouble(md, "CRPIX2", crpix_.y - (xy0.y - 1), "reference pixel, 1-based in this image");
    setDouble(md, "CRVAL1", crval_.ra().asDegrees(), "RA of the reference pixel [deg]");
    setDouble(md, "CRVAL2", crval_.dec().asDegrees(), "Dec of the reference pixel [deg]");
    setDouble(md, "CD1_1", cd_(0, 0), "[deg/pixel]");
    setDouble(md, "CD1_2", cd_(0, 1), "[deg/pixel]");
    setDouble(md, "CD2_1", cd_(1, 0), "[deg/pixel]");
    setDouble(md, "CD2_2", cd_(1, 1), "[deg/pixel]");
    setDouble(md, "LONPOLE", 180.0, "native longitude of the celestial pole [deg]");
    md.set("RADESYS", "ICRS", "celestial reference frame");
    setDouble(md, "EQUINOX", 2000.0, "ignored for ICRS; for old readers");
    if (sip) {
        writePolynomial(md, "A", sip_->order, sip_->a, "SIP forward x");
        writePolynomial(md, "B", sip_->order, sip_->b, "SIP forward y");
        if (sip_->inverseOrder > 0) {
            writePolynomial(md, "AP", sip_->inverseOrder, sip_->ap, "SIP inverse x");
            writePolynomial(md, "BP", sip_->inverseOrder, sip_->bp, "SIP inverse y");
        }
    }
    return md;
}

std::shared_ptr<const Wcs> Wcs::fromFitsMetadata(const PropertyList& md, Point2I xy0) {
    try {
        return parseFits(md, xy0);
    } catch (const LogicError& e) {  // a keyword of the wrong type
        throw InvalidInputError("malformed WCS keywords: " + e.message());
    }
}

std::shared_ptr<const Wcs> Wcs::shiftedPixelOrigin(Point2D shift) const {
    return std::make_shared<const Wcs>(crpix_ + shift, crval_, cd_, sip_);
}

std::shared_ptr<const Wcs> Wcs::withInverseSip(const Box2I& bbox, int order) const {
    if (!hasSip()) throw InvalidInputError("Wcs::withInverseSip: no forward SIP polynomials");
    if (bbox.empty()) throw InvalidInputError("Wcs::withInverseSip: empty box");
    if (order < 1 || order > maxSipOrder) throw InvalidInputError("Wcs::withInverseSip: order out of range");
    const int nGrid = std::max(40, 4 * (order + 1));
    const double margin = 0.05;
    const double x0 = bbox.minX() - 0.5 - margin * bbox.width(), x1 = bbox.maxX() + 0.5 + margin * bbox.width();
    const double y0 = bbox.minY() - 0.5 - margin * bbox.height(), y1 = bbox.maxY() + 0.5 + margin * bbox.height();
    const int nTerms = (order + 1) * (order + 2) / 2;
    const int nPoints = nGrid * nGrid;
    std::vector<double> us(nPoints), vs(nPoints);
    Eigen::VectorXd du(nPoints), dv(nPoints);
    double scale = 0.0;
    for (int i = 0; i < nGrid; ++i) {
        for (int j = 0; j < nGrid; ++j) {
            int k = i * nGrid + j;
            double u = x0 + (x1 - x0) * i / (nGrid - 1) - crpix_.x, v = y0 + (y1 - y0) * j / (nGrid - 1) - crpix_.y;
            us[k] = u + polyValue(sip_->a, sip_->order, u, v);
            vs[k] = v + polyValue(sip_->b, sip_->order, u, v);
            du[k] = u - us[k];
            dv[k] = v - vs[k];
            scale = std::max({scale, std::fabs(us[k]), std::fabs(vs[k])});
        }
    }
    if (scale == 0.0) scale = 1.0;
    Eigen::MatrixXd design(nPoints, nTerms);
    for (int k = 0; k < nPoints; ++k) {
        Powers pw(us[k] / scale, vs[k] / scale, order);
        int t = 0;
        for (int p = 0; p <= order; ++p)
            for (int q = 0; p + q <= order; ++q) design(k, t++) = pw.u[p] * pw.v[q];
    }
    Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(design);
    Eigen::VectorXd ca = qr.solve(du), cb = qr.solve(dv);
    SipPolynomials sip = *sip_;
    sip.inverseOrder = order;
    sip.ap = Eigen::MatrixXd::Zero(order + 1, order + 1);
    sip.bp = Eigen::MatrixXd::Zero(order + 1, order + 1);
    int t = 0;
    for (int p = 0; p <= order; ++p) {
        for (int q = 0; p + q <= order; ++q, ++t) {
            double norm = std::pow(scale, -(p + q));
            sip.ap(p, q) = ca[t] * norm;
            sip.bp(p, q) = cb[t] * norm;
        }
    }
    return std::make_shared<const Wcs>(crpix_, crval_, cd_, std::move(sip));
}

bool operator==(const Wcs& a, const Wcs& b) {
    if (!(a.crpix_ == b.crpix_ && a.crval_ == b.crval_ && a.cd_ == b.cd_ && a.hasSip() == b.hasSip())) return false;
    return !a.hasSip() || *a.sip_ == *b.sip_;
}

}  // namespace drp
