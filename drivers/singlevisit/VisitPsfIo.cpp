#include "drivers/singlevisit/VisitPsfIo.h"

#include <cmath>
#include <limits>

#include "core/Error.h"
#include "io/AtomicFile.h"
#include "io/Hdf5Catalog.h"
#include "io/Hdf5File.h"

namespace drp {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

/// Create `path` atomically and let `body` write its groups.
template <typename Body>
void writeAtomically(const std::filesystem::path& path, Body&& body) {
    AtomicFile out(path);
    try {
        Hdf5File f(out.tempPath(), Hdf5File::Mode::CreateExclusive);
        body(f);
        f.close();
    } catch (const Hdf5Error& e) {
        throw Hdf5Error(e.message() + " (writing temp file " + out.tempPath().string() + ")", path.string());
    }
    out.commit();
}

void setBBox(PropertyList& md, const Box2I& b) {
    md.set("BBOXX0", std::int64_t(b.minX()), "detector bbox: first column");
    md.set("BBOXY0", std::int64_t(b.minY()), "detector bbox: first row");
    md.set("BBOXW", std::int64_t(b.width()), "detector bbox: width");
    md.set("BBOXH", std::int64_t(b.height()), "detector bbox: height");
}

Box2I getBBox(const PropertyList& md) {
    return Box2I({int(md.getInt("BBOXX0")), int(md.getInt("BBOXY0"))}, int(md.getInt("BBOXW")), int(md.getInt("BBOXH")));
}

/// The QA scalars of a PsfDeterminationResult, as (column name, member) pairs.
struct FitScalar {
    const char* name;
    const char* doc;
    double PsfDeterminationResult::*member;
};
constexpr FitScalar kFitScalars[] = {
    {"reservedMeanSizeResidual", "mean linear dT/T of the reserved stars", &PsfDeterminationResult::reservedMeanSizeResidual},
    {"reservedWeightedMeanSizeResidual", "weighted mean linear dT/T of the reserved stars",
     &PsfDeterminationResult::reservedWeightedMeanSizeResidual},
    {"reservedSizeResidualWeightSum", "sum of the reserved stars' dT/T weights", &PsfDeterminationResult::reservedSizeResidualWeightSum},
    {"reservedSizeResidualWeightedSs", "sum of weight x (dT/T - weighted mean)^2", &PsfDeterminationResult::reservedSizeResidualWeightedSs},
    {"reservedMedianSizeResidual", "median linear dT/T of the reserved stars", &PsfDeterminationResult::reservedMedianSizeResidual},
    {"reservedSizeResidualScatter", "1.4826 MAD of the reserved stars' dT/T", &PsfDeterminationResult::reservedSizeResidualScatter},
    {"reservedDirectMedianSizeResidual", "median direct dT/T of the reserved stars",
     &PsfDeterminationResult::reservedDirectMedianSizeResidual},
    {"reservedEllipticityResidual", "median |e_star - e_psf| of the reserved stars", &PsfDeterminationResult::reservedEllipticityResidual},
    {"usedMedianSizeResidual", "median dT/T of the used stars", &PsfDeterminationResult::usedMedianSizeResidual},
    {"sizeChi2", "chi^2 of the stars' ln T against the model's", &PsfDeterminationResult::sizeChi2},
};
struct FitInt {
    const char* name;
    const char* doc;
    int PsfDeterminationResult::*member;
};
constexpr FitInt kFitInts[] = {
    {"nUsed", "stars of the detector in the visit's fit", &PsfDeterminationResult::nUsed},
    {"sizeChi2Terms", "stars in sizeChi2", &PsfDeterminationResult::sizeChi2Terms},
    {"stampSize", "the model's stamp side (pixels)", &PsfDeterminationResult::stampSize},
    {"oversampling", "the model's nodes per pixel", &PsfDeterminationResult::oversampling},
    {"spatialOrder", "the model's spatial order", &PsfDeterminationResult::spatialOrder},
};

enum StarRole : std::int32_t { kSelected = 0, kUsed = 1, kReserved = 2 };

}  // namespace

void writePsfStars(const std::filesystem::path& path, const PsfStars& stars, const std::vector<std::string>& badMaskPlanes) {
    if (stars.cutouts.size() != stars.candidates.size())
        throw LogicError("writePsfStars: " + std::to_string(stars.cutouts.size()) + " cutouts for " +
                         std::to_string(stars.candidates.size()) + " candidates");
    Schema cs;
    auto kx = cs.addField<double>("x", "centroid x (detector frame)", "pixel");
    auto ky = cs.addField<double>("y", "centroid y (detector frame)", "pixel");
    auto kf = cs.addField<double>("flux", "PSF flux", "electron");
    auto kfe = cs.addField<double>("fluxErr", "its error (<= 0: unknown)", "electron");
    auto kxx = cs.addField<double>("ixx", "second moment xx", "pixel^2");
    auto kyy = cs.addField<double>("iyy", "second moment yy", "pixel^2");
    auto kxy = cs.addField<double>("ixy", "second moment xy", "pixel^2");
    auto kSat = cs.addField<bool>("saturated", "saturated pixels in the footprint");
    auto kBl = cs.addField<bool>("blended", "a deblended child or a parent of several peaks");
    auto kMa = cs.addField<bool>("masked", "bad, interpolated or cosmic-ray pixels near the centre");
    auto kEd = cs.addField<bool>("edge", "too close to the image edge");
    auto kFl = cs.addField<bool>("flagged", "another measurement failure");
    auto kcx = cs.addField<std::int32_t>("cutoutMinX", "first column of the cutout", "pixel");
    auto kcy = cs.addField<std::int32_t>("cutoutMinY", "first row of the cutout", "pixel");
    auto kcw = cs.addField<std::int32_t>("cutoutWidth", "cutout width (0: no cutout)", "pixel");
    auto kch = cs.addField<std::int32_t>("cutoutHeight", "cutout height", "pixel");
    auto kco = cs.addField<std::int64_t>("cutoutFirstRow", "the cutout's first row in the pixels table");
    Table cand(cs, stars.candidates.size());
    std::size_t nPix = 0;
    for (std::size_t i = 0; i < stars.candidates.size(); ++i) {
        const PsfCandidate& c = stars.candidates[i];
        cand.at(kx, i) = c.position.x;
        cand.at(ky, i) = c.position.y;
        cand.at(kf, i) = c.flux;
        cand.at(kfe, i) = c.fluxErr;
        cand.at(kxx, i) = c.ixx;
        cand.at(kyy, i) = c.iyy;
        cand.at(kxy, i) = c.ixy;
        cand.at(kSat, i) = c.saturated;
        cand.at(kBl, i) = c.blended;
        cand.at(kMa, i) = c.masked;
        cand.at(kEd, i) = c.edge;
        cand.at(kFl, i) = c.flagged;
        const MaskedImageF& m = stars.cutouts[i];
        const Box2I b = m.bbox();
        const bool has = m.width() > 0 && m.height() > 0;
        cand.at(kcx, i) = has ? b.minX() : 0;
        cand.at(kcy, i) = has ? b.minY() : 0;
        cand.at(kcw, i) = has ? b.width() : 0;
        cand.at(kch, i) = has ? b.height() : 0;
        cand.at(kco, i) = std::int64_t(nPix);
        if (has) nPix += std::size_t(b.width()) * std::size_t(b.height());
    }
    cand.metadata() = stars.metadata;
    cand.metadata().set("DETECTOR", std::int64_t(stars.detector), "detector id");
    setBBox(cand.metadata(), stars.bbox);

    Schema ps;
    auto kImg = ps.addField<float>("image", "pixel value (background subtracted)", "electron");
    auto kVar = ps.addField<float>("variance", "pixel variance", "electron^2");
    auto kBad = ps.addField<bool>("bad", "one of the PSF determiner's bad mask planes is set");
    Table pix(ps, nPix);
    auto img = pix.column(kImg);
    auto var = pix.column(kVar);
    auto bad = pix.column(kBad);
    std::size_t r = 0;
    for (std::size_t i = 0; i < stars.cutouts.size(); ++i) {
        const MaskedImageF& m = stars.cutouts[i];
        if (!(m.width() > 0 && m.height() > 0)) continue;
        const MaskPixel badBits = m.mask().planeBitMaskIfPresent(badMaskPlanes);
        for (int y = 0; y < m.height(); ++y)
            for (int x = 0; x < m.width(); ++x, ++r) {
                img[r] = m.image()(x, y);
                var[r] = m.variance()(x, y);
                bad[r] = (m.mask()(x, y) & badBits) != 0;
            }
    }
    writeAtomically(path, [&](Hdf5File& f) {
        writeTable(f, "candidates", cand);
        writeTable(f, "pixels", pix);
    });
}

PsfStars readPsfStars(const std::filesystem::path& path) {
    Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    const Table cand = readTable(f, "candidates");
    const Table pix = readTable(f, "pixels");
    PsfStars out;
    out.metadata = cand.metadata();
    out.detector = int(out.metadata.getInt("DETECTOR"));
    out.bbox = getBBox(out.metadata);
    out.metadata.remove("DETECTOR");
    for (const char* k : {"BBOXX0", "BBOXY0", "BBOXW", "BBOXH"}) out.metadata.remove(k);
    auto x = cand.column<double>("x"), y = cand.column<double>("y"), fl = cand.column<double>("flux"),
         fe = cand.column<double>("fluxErr"), ixx = cand.column<double>("ixx"), iyy = cand.column<double>("iyy"),
         ixy = cand.column<double>("ixy");
    auto sat = cand.column<bool>("saturated"), bl = cand.column<bool>("blended"), ma = cand.column<bool>("masked"),
         ed = cand.column<bool>("edge"), fg = cand.column<bool>("flagged");
    auto cx = cand.column<std::int32_t>("cutoutMinX"), cy = cand.column<std::int32_t>("cutoutMinY"),
         cw = cand.column<std::int32_t>("cutoutWidth"), ch = cand.column<std::int32_t>("cutoutHeight");
    auto co = cand.column<std::int64_t>("cutoutFirstRow");
    auto img = pix.column<float>("image"), var = pix.column<float>("variance");
    auto bad = pix.column<bool>("bad");
    for (std::size_t i = 0; i < cand.size(); ++i) {
        PsfCandidate c;
        c.position = {x[i], y[i]};
        c.flux = fl[i];
        c.fluxErr = fe[i];
        c.ixx = ixx[i];
        c.iyy = iyy[i];
        c.ixy = ixy[i];
        c.saturated = sat[i] != 0;
        c.blended = bl[i] != 0;
        c.masked = ma[i] != 0;
        c.edge = ed[i] != 0;
        c.flagged = fg[i] != 0;
        out.candidates.push_back(c);
        if (cw[i] <= 0 || ch[i] <= 0) {
            out.cutouts.emplace_back();
            continue;
        }
        const std::size_t first = std::size_t(co[i]), n = std::size_t(cw[i]) * std::size_t(ch[i]);
        if (co[i] < 0 || first + n > pix.size())
            throw InvalidInputError("psfStars: cutout " + std::to_string(i) + " lies beyond the pixels table", path.string());
        MaskedImageF m(Box2I({cx[i], cy[i]}, cw[i], ch[i]));
        const MaskPixel badBit = m.mask().planeBitMask("BAD");
        std::size_t r = first;
        for (int yy = 0; yy < ch[i]; ++yy)
            for (int xx = 0; xx < cw[i]; ++xx, ++r) {
                m.image()(xx, yy) = img[r];
                m.variance()(xx, yy) = var[r];
                m.mask()(xx, yy) = bad[r] ? badBit : MaskPixel(0);
            }
        out.cutouts.push_back(std::move(m));
    }
    return out;
}

std::optional<DetectorVisitPsf> VisitPsfData::forDetector(int id) const {
    if (!model) return std::nullopt;
    for (const DetectorFit& d : detectors) {
        if (d.id != id) continue;
        DetectorVisitPsf out;
        out.fit = d.fit;
        out.fit.psf = model->reframed(d.bbox, d.offset);
        out.selected = d.selected;
        out.used = d.used;
        out.reserved = d.reserved;
        out.visitStars = nUsed;
        out.visitDetectors = int(detectors.size());
        return out;
    }
    return std::nullopt;
}

void writeVisitPsf(const std::filesystem::path& path, const VisitPsfData& data) {
    Schema ds;
    auto kId = ds.addField<std::int32_t>("detector", "detector id");
    auto kOx = ds.addField<double>("offsetX", "visit-frame x minus detector x", "pixel");
    auto kOy = ds.addField<double>("offsetY", "visit-frame y minus detector y", "pixel");
    auto kBx = ds.addField<std::int32_t>("bboxMinX", "detector bbox: first column", "pixel");
    auto kBy = ds.addField<std::int32_t>("bboxMinY", "detector bbox: first row", "pixel");
    auto kBw = ds.addField<std::int32_t>("bboxWidth", "detector bbox: width", "pixel");
    auto kBh = ds.addField<std::int32_t>("bboxHeight", "detector bbox: height", "pixel");
    std::vector<Key<double>> scalarKeys;
    for (const FitScalar& s : kFitScalars) scalarKeys.push_back(ds.addField<double>(s.name, s.doc));
    std::vector<Key<std::int32_t>> intKeys;
    for (const FitInt& s : kFitInts) intKeys.push_back(ds.addField<std::int32_t>(s.name, s.doc));
    Table det(ds, data.detectors.size());
    Schema ss;
    auto sDet = ss.addField<std::int32_t>("detector", "detector id");
    auto sX = ss.addField<double>("x", "centroid x (detector frame)", "pixel");
    auto sY = ss.addField<double>("y", "centroid y (detector frame)", "pixel");
    auto sRole = ss.addField<std::int32_t>("role", "0: selected (every selected star has this row), 1: used in the fit, 2: reserved (each has its own row too)");
    auto sDt = ss.addField<double>("dTT", "reserved star: linear dT/T of the model");
    auto sDirect = ss.addField<double>("dTTDirect", "reserved star: direct dT/T (noise-biased)");
    auto sW = ss.addField<double>("dTTWeight", "reserved star: weight of its dT/T");
    Table stars(ss);
    for (std::size_t i = 0; i < data.detectors.size(); ++i) {
        const VisitPsfData::DetectorFit& d = data.detectors[i];
        det.at(kId, i) = d.id;
        det.at(kOx, i) = d.offset.x;
        det.at(kOy, i) = d.offset.y;
        det.at(kBx, i) = d.bbox.minX();
        det.at(kBy, i) = d.bbox.minY();
        det.at(kBw, i) = d.bbox.width();
        det.at(kBh, i) = d.bbox.height();
        for (std::size_t k = 0; k < std::size(kFitScalars); ++k) det.at(scalarKeys[k], i) = d.fit.*kFitScalars[k].member;
        for (std::size_t k = 0; k < std::size(kFitInts); ++k) det.at(intKeys[k], i) = d.fit.*kFitInts[k].member;
        auto add = [&](const std::vector<Point2D>& ps, std::int32_t role) {
            for (std::size_t j = 0; j < ps.size(); ++j) {
                const std::size_t r = stars.size();
                stars.resize(r + 1);
                stars.at(sDet, r) = d.id;
                stars.at(sX, r) = ps[j].x;
                stars.at(sY, r) = ps[j].y;
                stars.at(sRole, r) = role;
                const bool res = role == kReserved && j < d.fit.reservedSizeResiduals.size();
                stars.at(sDt, r) = res ? d.fit.reservedSizeResiduals[j] : kNan;
                stars.at(sDirect, r) = res && j < d.fit.reservedDirectSizeResiduals.size() ? d.fit.reservedDirectSizeResiduals[j] : kNan;
                stars.at(sW, r) = res && j < d.fit.reservedSizeResidualWeights.size() ? d.fit.reservedSizeResidualWeights[j] : 0.0;
            }
        };
        add(d.selected, kSelected);
        add(d.used, kUsed);
        add(d.reserved, kReserved);
    }
    PropertyList& md = det.metadata();
    md = data.metadata;
    md.set("VPSFOK", data.model != nullptr, "a visit-level PSF model was fitted");
    md.set("VPSFWHY", data.model ? std::string() : data.reason, "why there is no model");
    md.set("VPSFNUSE", std::int64_t(data.nUsed), "stars in the visit's fit");
    md.set("VPSFORDR", std::int64_t(data.spatialOrder), "spatial order of the visit model");
    PsfRecord record;
    if (data.model) {
        record = data.model->toRecord();
        md.set("PSFTYPE", record.typeName, "type of the visit model");
        std::string names;
        for (const auto& [name, values] : record.arrays) names += (names.empty() ? "" : ",") + name;
        md.set("PSFARRAY", names, "the model's arrays (groups model_<name>)");
    }
    writeAtomically(path, [&](Hdf5File& f) {
        writeTable(f, "detectors", det);
        writeTable(f, "stars", stars);
        for (const auto& [name, values] : record.arrays) {
            Schema as;
            auto kv = as.addField<double>("value", "array element");
            Table a(as, values.size());
            for (std::size_t i = 0; i < values.size(); ++i) a.at(kv, i) = values[i];
            writeTable(f, "model_" + name, a);
        }
    });
}

VisitPsfData readVisitPsf(const std::filesystem::path& path) {
    Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    const Table det = readTable(f, "detectors");
    const Table stars = readTable(f, "stars");
    VisitPsfData out;
    out.metadata = det.metadata();
    const bool ok = out.metadata.getBool("VPSFOK");
    out.reason = out.metadata.getString("VPSFWHY", "");
    out.nUsed = int(out.metadata.getInt("VPSFNUSE"));
    out.spatialOrder = int(out.metadata.getInt("VPSFORDR"));
    if (ok) {
        PsfRecord record;
        record.typeName = out.metadata.getString("PSFTYPE");
        std::string names = out.metadata.getString("PSFARRAY");
        for (std::size_t lo = 0; lo <= names.size();) {
            std::size_t hi = names.find(',', lo);
            if (hi == std::string::npos) hi = names.size();
            const std::string name = names.substr(lo, hi - lo);
            if (!name.empty()) {
                const Table a = readTable(f, "model_" + name);
                auto v = a.column<double>("value");
                record.set(name, std::vector<double>(v.begin(), v.end()));
            }
            lo = hi + 1;
        }
        registerPsfexPsf();
        auto psf = std::dynamic_pointer_cast<const PsfexPsf>(Psf::fromRecord(record));
        if (!psf) throw InvalidInputError("visitPsf: the model is a " + record.typeName + ", not a PsfexPsf", path.string());
        out.model = std::move(psf);
    }
    for (const char* k : {"VPSFOK", "VPSFWHY", "VPSFNUSE", "VPSFORDR", "PSFTYPE", "PSFARRAY"}) out.metadata.remove(k);
    auto id = det.column<std::int32_t>("detector");
    auto ox = det.column<double>("offsetX"), oy = det.column<double>("offsetY");
    auto bx = det.column<std::int32_t>("bboxMinX"), by = det.column<std::int32_t>("bboxMinY"),
         bw = det.column<std::int32_t>("bboxWidth"), bh = det.column<std::int32_t>("bboxHeight");
    for (std::size_t i = 0; i < det.size(); ++i) {
        VisitPsfData::DetectorFit d;
        d.id = id[i];
        d.offset = {ox[i], oy[i]};
        d.bbox = Box2I({bx[i], by[i]}, bw[i], bh[i]);
        for (const FitScalar& s : kFitScalars) d.fit.*s.member = det.column<double>(s.name)[i];
        for (const FitInt& s : kFitInts) d.fit.*s.member = det.column<std::int32_t>(s.name)[i];
        out.detectors.push_back(std::move(d));
    }
    auto sDet = stars.column<std::int32_t>("detector");
    auto sx = stars.column<double>("x"), sy = stars.column<double>("y");
    auto role = stars.column<std::int32_t>("role");
    auto dt = stars.column<double>("dTT"), direct = stars.column<double>("dTTDirect"), w = stars.column<double>("dTTWeight");
    for (std::size_t r = 0; r < stars.size(); ++r) {
        VisitPsfData::DetectorFit* d = nullptr;
        for (VisitPsfData::DetectorFit& c : out.detectors)
            if (c.id == sDet[r]) d = &c;
        if (!d) throw InvalidInputError("visitPsf: a star of detector " + std::to_string(sDet[r]) + ", which is not listed", path.string());
        const Point2D p{sx[r], sy[r]};
        if (role[r] == kSelected) {
            d->selected.push_back(p);
        } else if (role[r] == kUsed) {
            d->used.push_back(p);
        } else {
            d->reserved.push_back(p);
            d->fit.reservedSizeResiduals.push_back(dt[r]);
            d->fit.reservedDirectSizeResiduals.push_back(direct[r]);
            d->fit.reservedSizeResidualWeights.push_back(w[r]);
        }
    }
    return out;
}

}  // namespace drp
