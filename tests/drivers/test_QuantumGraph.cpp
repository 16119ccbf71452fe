// Tests of drivers/campaign/QuantumGraph: hand-made exposure listings (visits of a 3x3-detector camera in
// two bands, at real sky positions straddling tract boundaries of a small rings sky map) expanded by the
// single-visit and drp-full pipelines. Checked: counts per task; topological order; every dataset has at
// most one producer and every internal input one; singleVisit reads and writes exactly the declared refs;
// consolidateVisit / releaseIndex / assembleCoadd depend on exactly the expected quanta; the graph does not
// depend on the order of the listing (several shuffles); visit-patch quanta against a brute-force
// polygon-box overlap over every patch of every nearby tract (SkyMap::patchPolygon); QuantumSpec bytes
// round trip and reject truncated or garbage bytes; shardTracts is a balanced partition for many random
// cost lists; the best-seeing flavour's global selection quantum feeds every goodSeeingCoadd quantum.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "core/Error.h"
#include "drivers/campaign/QuantumGraph.h"

namespace drp {
namespace {

SkyMapConfig smallSkyMapConfig() {
    SkyMapConfig c;
    c.numRings = 60;  // rings of ~2.95 deg: the equator is a ring edge, tracts ~2.95 deg wide
    c.pixelScaleArcsec = 1.0;
    c.tractOverlapArcmin = 6.0;
    c.patchInnerDimension = 400;  // 6.7' patches
    c.patchBorder = 50;
    c.numPatchesPerSide = 0;
    return c;
}

const SkyMap& smallMap() {
    static const SkyMap map(smallSkyMapConfig());
    return map;
}

constexpr int kDetPix = 600;      // detector side, pixels at 1"/px (10')
constexpr int kDetPitch = 650;    // detector spacing in the focal plane

/// Visits of a 3x3-detector camera (detectors 0..8) dithered around (1.4, 0.1) deg: across the ring
/// boundary at dec 0 and the tract boundary at RA 1.475 deg of smallMap.
std::vector<ExposureRegion> makeExposures(int nVisits, std::uint64_t seed, bool withCorners = true) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<ExposureRegion> out;
    for (int v = 0; v < nVisits; ++v) {
        const SpherePoint centre = SpherePoint::fromDegrees(1.4 + 0.5 * u(rng), 0.1 + 0.5 * u(rng));
        const auto wcs = Wcs::makeTan({0.0, 0.0}, centre, 1.0 * arcseconds, (180.0 * u(rng)) * degrees);
        const std::string band = v % 2 == 0 ? "g" : "r";
        for (int d = 0; d < 9; ++d) {
            const double cx = (d % 3 - 1) * kDetPitch, cy = (d / 3 - 1) * kDetPitch, h = 0.5 * kDetPix;
            ExposureRegion e;
            e.dataId = DataId{{"instrument", "TestCam"}, {"band", band}, {"visit", 100 + v}, {"detector", d},
                              {"day_obs", 20240101 + v / 3}};
            e.center = wcs->pixelToSky({cx, cy});
            if (withCorners)
                e.corners = wcs->pixelToSky(std::vector<Point2D>{{cx - h, cy - h}, {cx + h, cy - h}, {cx + h, cy + h}, {cx - h, cy + h}});
            out.push_back(std::move(e));
        }
    }
    return out;
}

CampaignRuns testRuns() { return CampaignRuns{"raws/all", "calib/v1", "out/run 1"}; }

std::uint32_t taskIndex(const QuantumGraph& g, const std::string& name) {
    for (std::size_t t = 0; t < g.tasks().size(); ++t)
        if (g.tasks()[t].name == name) return std::uint32_t(t);
    ADD_FAILURE() << "no task " << name;
    return 0;
}

std::vector<std::uint32_t> quantaOf(const QuantumGraph& g, const std::string& name) {
    const std::uint32_t t = taskIndex(g, name);
    std::vector<std::uint32_t> out;
    for (std::uint32_t q = 0; q < g.size(); ++q)
        if (g.quanta()[q].task == t) out.push_back(q);
    return out;
}

/// Structural invariants of any graph.
void checkStructure(const QuantumGraph& g) {
    std::vector<int> producedBy(g.datasets().size(), -1);
    for (std::uint32_t q = 0; q < g.size(); ++q) {
        const auto& qu = g.quanta()[q];
        EXPECT_TRUE(std::is_sorted(qu.upstream.begin(), qu.upstream.end()));
        EXPECT_EQ(std::adjacent_find(qu.upstream.begin(), qu.upstream.end()), qu.upstream.end());
        std::set<std::uint32_t> expectUp;
        for (auto d : qu.inputs) {
            ASSERT_LT(d, g.datasets().size());
            if (g.datasets()[d].producer >= 0) {
                EXPECT_LT(std::uint32_t(g.datasets()[d].producer), q) << g.label(q);
                expectUp.insert(std::uint32_t(g.datasets()[d].producer));
            }
        }
        EXPECT_EQ(std::vector<std::uint32_t>(expectUp.begin(), expectUp.end()), qu.upstream) << g.label(q);
        for (auto u : qu.upstream) EXPECT_LT(u, q);
        for (auto d : qu.outputs) {
            ASSERT_LT(d, g.datasets().size());
            EXPECT_EQ(producedBy[d], -1) << "dataset " << d << " produced twice";
            producedBy[d] = int(q);
            EXPECT_EQ(g.datasets()[d].producer, int(q));
        }
    }
    for (std::size_t d = 0; d < g.datasets().size(); ++d) {
        EXPECT_EQ(producedBy[d], g.datasets()[d].producer) << "dataset " << d;
        // Interning: the ref finds its own node.
        auto found = g.findDataset(g.ref(std::uint32_t(d)));
        ASSERT_TRUE(found.has_value());
        EXPECT_EQ(*found, d);
    }
}

TEST(Pipelines, NamesAndDeclarations) {
    EXPECT_EQ(pipelineNames(), (std::vector<std::string>{"single-visit", "coadd", "drp-full"}));
    auto sv = pipelineByName("single-visit");
    ASSERT_EQ(sv.size(), 5u);
    const std::vector<std::string> rawAndCalibs{"raw", "bias", "dark", "flat", "ampCalib", "defects"};
    EXPECT_EQ(sv[0].name, "characterizeImage");
    EXPECT_EQ(sv[0].inputs, rawAndCalibs);
    EXPECT_EQ(sv[0].outputs, (std::vector<std::string>{"psfStars"}));
    EXPECT_EQ(sv[1].name, "measureVisitPsf");
    EXPECT_EQ(sv[1].level, QuantumLevel::Visit);
    EXPECT_TRUE(sv[1].toleratesFailedInputs);
    EXPECT_EQ(sv[2].name, "singleVisit");
    std::vector<std::string> svInputs = rawAndCalibs;
    svInputs.push_back("visitPsf");
    EXPECT_EQ(sv[2].inputs, svInputs);
    EXPECT_EQ(sv[2].outputs, (std::vector<std::string>{"calexp", "calexpBackground", "src"}));
    for (const auto& t : sv) EXPECT_TRUE(t.implemented) << t.name;
    for (const auto& t : sv) EXPECT_EQ(t.toleratesFailedInputs, t.name == "measureVisitPsf") << t.name;
    // Without the visit-level PSF: singleVisit alone reads the raw and the calibrations.
    withoutVisitPsf(sv);
    ASSERT_EQ(sv.size(), 3u);
    EXPECT_EQ(sv[0].name, "singleVisit");
    EXPECT_EQ(sv[0].inputs, rawAndCalibs);
    auto full = pipelineByName("drp-full");
    EXPECT_EQ(full.size(), 16u);
    for (const auto& t : full)
        EXPECT_EQ(t.implemented, t.name == "characterizeImage" || t.name == "measureVisitPsf" || t.name == "singleVisit" ||
                                     t.name == "consolidateVisit" || t.name == "releaseIndex")
            << t.name;
    EXPECT_EQ(full.back().inputs, (std::vector<std::string>{"sourceTable_visit", "objectTable"}));
    EXPECT_THROW(pipelineByName("nope"), NotFoundError);
    EXPECT_STREQ(quantumLevelName(QuantumLevel::PatchBand), "patch-band");
}

TEST(QuantumGraph, SingleVisitStructure) {
    const int nVisits = 4;
    auto exposures = makeExposures(nVisits, 11);
    const auto runs = testRuns();
    QuantumGraph g = buildQuantumGraph(pipelineByName("single-visit"), exposures, smallMap(), runs);
    auto counts = g.countsPerTask();
    ASSERT_EQ(counts.size(), 5u);
    EXPECT_EQ(counts[0], (std::pair<std::string, std::size_t>{"characterizeImage", nVisits * 9}));
    EXPECT_EQ(counts[1], (std::pair<std::string, std::size_t>{"measureVisitPsf", nVisits}));
    EXPECT_EQ(counts[2], (std::pair<std::string, std::size_t>{"singleVisit", nVisits * 9}));
    EXPECT_EQ(counts[3], (std::pair<std::string, std::size_t>{"consolidateVisit", nVisits}));
    EXPECT_EQ(counts[4], (std::pair<std::string, std::size_t>{"releaseIndex", 1}));
    EXPECT_EQ(g.size(), std::size_t(nVisits * 20 + 1));
    checkStructure(g);

    // The tract of a visit: the one holding the normalised mean of its detectors' centres.
    std::map<std::int64_t, int> visitTract;
    {
        std::map<std::int64_t, Eigen::Vector3d> sum;
        for (const auto& e : exposures) {
            auto [it, added] = sum.try_emplace(e.dataId.getInt(Dimension::Visit), Eigen::Vector3d::Zero());
            it->second += e.center.vector();
        }
        for (const auto& [v, vec] : sum) visitTract[v] = smallMap().findTract(SpherePoint::fromVector(vec));
    }
    std::set<int> tracts;
    for (const auto& [v, t] : visitTract) tracts.insert(t);
    EXPECT_GE(tracts.size(), 2u) << "the listing should straddle tracts";

    // characterizeImage and singleVisit: exactly the declared refs.
    std::map<DataId, const ExposureRegion*> byVd;
    for (const auto& e : exposures)
        byVd[e.dataId.subset({Dimension::Instrument, Dimension::Band, Dimension::Visit, Dimension::Detector})] = &e;
    std::map<std::int64_t, std::uint32_t> visitPsfQuantum;
    for (auto q : quantaOf(g, "measureVisitPsf")) {
        const DataId id = g.dataId(q);
        EXPECT_EQ(id.size(), 3u);
        visitPsfQuantum[id.getInt(Dimension::Visit)] = q;
        std::vector<std::uint32_t> expect;
        for (auto p : quantaOf(g, "characterizeImage"))
            if (g.dataId(p).getInt(Dimension::Visit) == id.getInt(Dimension::Visit)) expect.push_back(p);
        EXPECT_EQ(expect.size(), 9u);
        EXPECT_EQ(g.quanta()[q].upstream, expect) << g.label(q);
        EXPECT_EQ(g.quanta()[q].tract, visitTract.at(id.getInt(Dimension::Visit)));
        const QuantumSpec s = g.spec(q);
        ASSERT_EQ(s.inputs.size(), 9u);
        for (const auto& r : s.inputs) EXPECT_EQ(r.datasetType, "psfStars");
        EXPECT_EQ(s.outputs, (std::vector<DatasetRef>{{"visitPsf", runs.output, id}}));
    }
    for (const char* task : {"characterizeImage", "singleVisit"}) {
        const bool sv = std::string(task) == "singleVisit";
        for (auto q : quantaOf(g, task)) {
            const QuantumSpec s = g.spec(q);
            ASSERT_TRUE(byVd.count(s.dataId)) << s.dataId.toString();
            const ExposureRegion& e = *byVd[s.dataId];
            const DataId det{{"instrument", "TestCam"}, {"detector", s.dataId.getInt(Dimension::Detector)}};
            DataId flat = det;
            flat.set(Dimension::Band, s.dataId.getString(Dimension::Band));
            std::vector<DatasetRef> inputs = {{"raw", runs.raw, e.dataId},        {"bias", runs.calib, det},
                                              {"dark", runs.calib, det},          {"flat", runs.calib, flat},
                                              {"ampCalib", runs.calib, det},      {"defects", runs.calib, det}};
            const std::int64_t visit = s.dataId.getInt(Dimension::Visit);
            if (sv) inputs.push_back({"visitPsf", runs.output, s.dataId.subset({Dimension::Instrument, Dimension::Band, Dimension::Visit})});
            EXPECT_EQ(s.inputs, inputs);
            const std::vector<DatasetRef> outputs =
                sv ? std::vector<DatasetRef>{{"calexp", runs.output, s.dataId}, {"calexpBackground", runs.output, s.dataId}, {"src", runs.output, s.dataId}}
                   : std::vector<DatasetRef>{{"psfStars", runs.output, s.dataId}};
            EXPECT_EQ(s.outputs, outputs);
            EXPECT_EQ(g.quanta()[q].tract, visitTract.at(visit)) << g.label(q);
            EXPECT_FLOAT_EQ(g.quanta()[q].cost, sv ? 1.0f : 0.35f);
            EXPECT_EQ(g.quanta()[q].dataId.getInt(Dimension::Detector), s.dataId.getInt(Dimension::Detector));
            EXPECT_EQ(g.quanta()[q].upstream, sv ? std::vector<std::uint32_t>{visitPsfQuantum.at(visit)} : std::vector<std::uint32_t>{});
        }
    }
    // consolidateVisit: exactly the singleVisit quanta of its visit; releaseIndex: every consolidateVisit.
    std::set<std::uint32_t> consolidate;
    for (auto q : quantaOf(g, "consolidateVisit")) {
        const DataId id = g.dataId(q);
        EXPECT_EQ(id.size(), 3u);
        std::vector<std::uint32_t> expect;
        for (auto p : quantaOf(g, "singleVisit"))
            if (g.dataId(p).getInt(Dimension::Visit) == id.getInt(Dimension::Visit)) expect.push_back(p);
        EXPECT_EQ(expect.size(), 9u);
        EXPECT_EQ(g.quanta()[q].upstream, expect) << g.label(q);
        EXPECT_EQ(g.quanta()[q].tract, visitTract.at(id.getInt(Dimension::Visit)));
        const QuantumSpec s = g.spec(q);
        ASSERT_EQ(s.inputs.size(), 9u);
        for (const auto& r : s.inputs) EXPECT_EQ(r.datasetType, "src");
        EXPECT_EQ(s.outputs, (std::vector<DatasetRef>{{"sourceTable_visit", runs.output, id}}));
        consolidate.insert(q);
    }
    auto ri = quantaOf(g, "releaseIndex");
    ASSERT_EQ(ri.size(), 1u);
    EXPECT_EQ(g.quanta()[ri[0]].upstream, std::vector<std::uint32_t>(consolidate.begin(), consolidate.end()));
    EXPECT_TRUE(g.dataId(ri[0]).empty());
    EXPECT_EQ(g.quanta()[ri[0]].tract, -1);
    EXPECT_EQ(g.label(ri[0]), "releaseIndex");
    EXPECT_EQ(g.label(0), "characterizeImage band=g visit=100 detector=0");
    // Tract costs: every quantum but the global one.
    double total = 0;
    for (const auto& [t, c] : g.tractCosts()) total += c;
    EXPECT_NEAR(total, nVisits * 9 * (1.0 + 0.35) + nVisits * (0.5 + 0.05), 1e-4);
    EXPECT_GT(g.memoryBytes(), 0u);
}

TEST(QuantumGraph, SameGraphForAnyListingOrder) {
    const auto exposures = makeExposures(5, 21);
    const auto pipeline = pipelineByName("drp-full");
    const QuantumGraph ref = buildQuantumGraph(pipeline, exposures, smallMap(), testRuns());
    for (std::uint64_t seed : {1, 2, 3, 4, 5, 6}) {
        auto shuffled = exposures;
        std::mt19937_64 rng(seed);
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        const QuantumGraph g = buildQuantumGraph(pipeline, shuffled, smallMap(), testRuns());
        ASSERT_EQ(g.size(), ref.size()) << "seed " << seed;
        for (std::uint32_t q = 0; q < g.size(); ++q) {
            ASSERT_EQ(g.spec(q), ref.spec(q)) << "seed " << seed << " quantum " << q;
            EXPECT_EQ(g.quanta()[q].upstream, ref.quanta()[q].upstream);
            EXPECT_EQ(g.quanta()[q].tract, ref.quanta()[q].tract);
        }
    }
}

// --- drp-full: visit-patch overlaps against brute force --------------------------------------------------

bool segmentsIntersect(Point2D a, Point2D b, Point2D c, Point2D d) {
    auto cross = [](Point2D o, Point2D p, Point2D q) { return (p.x - o.x) * (q.y - o.y) - (p.y - o.y) * (q.x - o.x); };
    const double d1 = cross(c, d, a), d2 = cross(c, d, b), d3 = cross(a, b, c), d4 = cross(a, b, d);
    return ((d1 > 0) != (d2 > 0)) && ((d3 > 0) != (d4 > 0));
}

bool insideConvex(const std::vector<Point2D>& poly, Point2D p) {
    int pos = 0, neg = 0;
    for (std::size_t i = 0; i < poly.size(); ++i) {
        const Point2D a = poly[i], b = poly[(i + 1) % poly.size()];
        const double c = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
        pos += c > 0;
        neg += c < 0;
    }
    return pos == 0 || neg == 0;
}

/// Two convex quadrilaterals overlap: a vertex of one inside the other, or two edges cross.
bool quadsOverlap(const std::vector<Point2D>& a, const std::vector<Point2D>& b) {
    for (auto p : a)
        if (insideConvex(b, p)) return true;
    for (auto p : b)
        if (insideConvex(a, p)) return true;
    for (std::size_t i = 0; i < a.size(); ++i)
        for (std::size_t j = 0; j < b.size(); ++j)
            if (segmentsIntersect(a[i], a[(i + 1) % a.size()], b[j], b[(j + 1) % b.size()])) return true;
    return false;
}

using VisitPatch = std::tuple<std::int64_t, int, int>;  // visit, tract, patch

/// For every (visit, tract, patch): the detectors whose corners overlap the patch's outer box.
std::map<VisitPatch, std::set<std::int64_t>> bruteForceOverlaps(const std::vector<ExposureRegion>& exposures) {
    const SkyMap& map = smallMap();
    std::map<VisitPatch, std::set<std::int64_t>> out;
    for (const auto& e : exposures) {
        for (const auto& t : map.tracts()) {
            if (t.center.separation(e.center).asDegrees() > t.outerRadiusDeg + 1.0) continue;
            std::vector<Point2D> det = t.wcs->skyToPixel(e.corners);
            for (int p = 0; p < t.numPatches(); ++p) {
                const std::vector<Point2D> box = t.wcs->skyToPixel(map.patchPolygon(t, map.patch(t, p), true));
                if (quadsOverlap(det, box))
                    out[{e.dataId.getInt(Dimension::Visit), t.id, p}].insert(e.dataId.getInt(Dimension::Detector));
            }
        }
    }
    return out;
}

TEST(QuantumGraph, DrpFullWarpsMatchBruteForceOverlaps) {
    const auto exposures = makeExposures(6, 31);
    const auto runs = testRuns();
    GraphBuildOptions opt;
    opt.skymapName = "small map";
    const QuantumGraph g = buildQuantumGraph(pipelineByName("drp-full"), exposures, smallMap(), runs, opt);
    checkStructure(g);
    const auto expected = bruteForceOverlaps(exposures);
    ASSERT_GT(expected.size(), 20u);

    std::map<VisitPatch, std::uint32_t> warpQuantum;
    std::set<int> warpTracts;
    for (auto q : quantaOf(g, "makeWarp")) {
        const QuantumSpec s = g.spec(q);
        const VisitPatch key{s.dataId.getInt(Dimension::Visit), int(s.dataId.getInt(Dimension::Tract)),
                             int(s.dataId.getInt(Dimension::Patch))};
        EXPECT_EQ(s.dataId.getString(Dimension::Skymap), "small map");
        EXPECT_EQ(s.dataId.size(), 6u);
        EXPECT_EQ(g.quanta()[q].tract, std::get<1>(key));
        warpQuantum[key] = q;
        warpTracts.insert(std::get<1>(key));
        std::set<std::int64_t> detectors;
        int globals = 0;
        for (const auto& r : s.inputs) {
            if (r.datasetType == "calexp") {
                EXPECT_EQ(r.dataId.getInt(Dimension::Visit), std::get<0>(key));
                detectors.insert(r.dataId.getInt(Dimension::Detector));
            } else {
                EXPECT_TRUE(r.datasetType == "fgcmCalibration" || r.datasetType == "astrometrySolution") << r.datasetType;
                EXPECT_TRUE(r.dataId.empty());
                ++globals;
            }
        }
        EXPECT_EQ(globals, 2);
        auto it = expected.find(key);
        ASSERT_NE(it, expected.end()) << "warp of a patch no detector overlaps: " << g.label(q);
        EXPECT_EQ(detectors, it->second) << g.label(q);
    }
    EXPECT_EQ(warpQuantum.size(), expected.size());
    for (const auto& [key, dets] : expected)
        EXPECT_TRUE(warpQuantum.count(key)) << "missing warp visit " << std::get<0>(key) << " tract " << std::get<1>(key)
                                            << " patch " << std::get<2>(key);
    EXPECT_GE(warpTracts.size(), 2u);

    // assembleCoadd depends on exactly the warps of its band and patch.
    std::map<std::int64_t, std::string> bandOfVisit;
    for (const auto& e : exposures) bandOfVisit[e.dataId.getInt(Dimension::Visit)] = e.dataId.getString(Dimension::Band);
    std::size_t coadds = 0;
    for (auto q : quantaOf(g, "assembleCoadd")) {
        const DataId id = g.dataId(q);
        EXPECT_EQ(id.size(), 4u);
        std::vector<std::uint32_t> expect;
        for (const auto& [key, wq] : warpQuantum)
            if (std::get<1>(key) == id.getInt(Dimension::Tract) && std::get<2>(key) == id.getInt(Dimension::Patch) &&
                bandOfVisit[std::get<0>(key)] == id.getString(Dimension::Band))
                expect.push_back(wq);
        std::sort(expect.begin(), expect.end());
        EXPECT_FALSE(expect.empty());
        EXPECT_EQ(g.quanta()[q].upstream, expect) << g.label(q);
        EXPECT_EQ(g.quanta()[q].tract, id.getInt(Dimension::Tract));
        ++coadds;
    }
    // One coadd per (band, patch) with a warp; patch tasks once per patch; globals once.
    std::set<std::tuple<std::string, int, int>> bandPatches;
    std::set<std::pair<int, int>> patches;
    for (const auto& [key, wq] : warpQuantum) {
        bandPatches.insert({bandOfVisit[std::get<0>(key)], std::get<1>(key), std::get<2>(key)});
        patches.insert({std::get<1>(key), std::get<2>(key)});
    }
    EXPECT_EQ(coadds, bandPatches.size());
    const auto countList = g.countsPerTask();
    std::map<std::string, std::size_t> counts(countList.begin(), countList.end());
    for (const char* t : {"detectCoadd", "measureObjects", "forcedPhotCoadd"}) EXPECT_EQ(counts[t], bandPatches.size()) << t;
    for (const char* t : {"mergeDetections", "deblend", "mergeMeasurements", "writeObjectTable"}) EXPECT_EQ(counts[t], patches.size()) << t;
    for (const char* t : {"fgcm", "globalAstrometry", "releaseIndex"}) EXPECT_EQ(counts[t], 1u) << t;
    EXPECT_EQ(counts["singleVisit"], exposures.size());
    // deblend reads the merged detections and the coadd of every band of its patch.
    for (auto q : quantaOf(g, "deblend")) {
        const QuantumSpec s = g.spec(q);
        ASSERT_FALSE(s.inputs.empty());
        EXPECT_EQ(s.inputs[0].datasetType, "deepCoadd_mergeDet");
        std::size_t bands = 0;
        for (const auto& b : bandPatches)
            bands += std::get<1>(b) == s.dataId.getInt(Dimension::Tract) && std::get<2>(b) == s.dataId.getInt(Dimension::Patch);
        EXPECT_EQ(s.inputs.size(), 1 + bands);
    }
    // releaseIndex reads every sourceTable_visit and every objectTable.
    auto ri = quantaOf(g, "releaseIndex");
    ASSERT_EQ(ri.size(), 1u);
    EXPECT_EQ(g.spec(ri[0]).inputs.size(), 6 + patches.size());
}

// The coadd pipeline with the flavours: one global selectBestSeeingVisits quantum reading every calexp (both
// bands, every visit and detector) and writing the one bestSeeingVisits; every assembleGoodSeeingCoadd reads
// it (so depends on that quantum) besides the same calexps and backgrounds as the deep coadd of its patch
// and band; assembleShortPeriodCoadd does not. Without best seeing neither task exists; the selection task
// alone joins a pipeline without coadds (a Slurm campaign's first stage).
TEST(QuantumGraph, BestSeeingSelectionIsGlobalAndFeedsEveryPatch) {
    const auto exposures = makeExposures(6, 31);
    std::vector<TaskDef> tasks = pipelineByName("coadd");
    for (auto& t : coaddFlavourTasks(true, true)) tasks.push_back(std::move(t));
    const QuantumGraph g = buildQuantumGraph(tasks, exposures, smallMap(), testRuns());
    checkStructure(g);
    const auto sel = quantaOf(g, "selectBestSeeingVisits");
    ASSERT_EQ(sel.size(), 1u);
    const QuantumSpec ss = g.spec(sel[0]);
    EXPECT_TRUE(ss.dataId.empty());
    EXPECT_EQ(g.quanta()[sel[0]].tract, -1);
    EXPECT_EQ(ss.inputs.size(), exposures.size());
    for (const auto& r : ss.inputs) EXPECT_EQ(r.datasetType, "calexp");
    ASSERT_EQ(ss.outputs.size(), 1u);
    EXPECT_EQ(ss.outputs[0].datasetType, "bestSeeingVisits");
    EXPECT_TRUE(ss.outputs[0].dataId.empty());
    // Every singleVisit quantum is upstream of the selection.
    EXPECT_EQ(g.quanta()[sel[0]].upstream.size(), exposures.size());

    std::map<DataId, QuantumSpec> deep;
    for (auto q : quantaOf(g, "assembleCoadd")) deep.emplace(g.dataId(q), g.spec(q));
    const auto good = quantaOf(g, "assembleGoodSeeingCoadd");
    EXPECT_EQ(good.size(), deep.size());
    EXPECT_GE(deep.size(), 10u);
    for (auto q : good) {
        const QuantumSpec s = g.spec(q);
        auto it = deep.find(s.dataId);
        ASSERT_NE(it, deep.end()) << g.label(q);
        std::vector<DatasetRef> others;
        int selections = 0;
        for (const auto& r : s.inputs) {
            if (r.datasetType == "bestSeeingVisits") {
                ++selections;
                EXPECT_EQ(r, ss.outputs[0]);
            } else {
                others.push_back(r);
            }
        }
        EXPECT_EQ(selections, 1) << g.label(q);
        EXPECT_EQ(others, it->second.inputs) << g.label(q);
        const auto& up = g.quanta()[q].upstream;
        EXPECT_TRUE(std::binary_search(up.begin(), up.end(), sel[0])) << g.label(q);
        EXPECT_GE(g.quanta()[q].tract, 0);
    }
    for (auto q : quantaOf(g, "assembleShortPeriodCoadd")) {
        const auto& up = g.quanta()[q].upstream;
        EXPECT_FALSE(std::binary_search(up.begin(), up.end(), sel[0])) << g.label(q);
    }
    for (const auto& t : coaddFlavourTasks(false, true))
        EXPECT_TRUE(t.name != "selectBestSeeingVisits" && t.name != "assembleGoodSeeingCoadd") << t.name;
    std::vector<TaskDef> sv = pipelineByName("single-visit");
    sv.push_back(bestSeeingSelectionTask());
    const QuantumGraph g2 = buildQuantumGraph(sv, exposures, smallMap(), testRuns());
    checkStructure(g2);
    EXPECT_EQ(quantaOf(g2, "selectBestSeeingVisits").size(), 1u);
}

TEST(QuantumGraph, WarpsFromCentresWithoutCorners) {
    const auto exposures = makeExposures(3, 41, false);
    const QuantumGraph g = buildQuantumGraph(pipelineByName("drp-full"), exposures, smallMap(), testRuns());
    checkStructure(g);
    std::set<VisitPatch> expect;
    for (const auto& e : exposures) {
        const TractInfo& t = smallMap().tract(smallMap().findTract(e.center));
        expect.insert({e.dataId.getInt(Dimension::Visit), t.id, smallMap().findPatch(t, e.center).index});
    }
    std::set<VisitPatch> got;
    for (auto q : quantaOf(g, "makeWarp")) {
        const DataId id = g.dataId(q);
        got.insert({id.getInt(Dimension::Visit), int(id.getInt(Dimension::Tract)), int(id.getInt(Dimension::Patch))});
    }
    EXPECT_EQ(got, expect);
}

TEST(QuantumGraph, EmptyListingAndInvalidInputs) {
    const QuantumGraph empty = buildQuantumGraph(pipelineByName("single-visit"), {}, smallMap(), testRuns());
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_TRUE(empty.tractCosts().empty());

    auto exposures = makeExposures(1, 51);
    auto noBand = exposures;
    noBand[3].dataId.erase(Dimension::Band);
    EXPECT_THROW(buildQuantumGraph(pipelineByName("single-visit"), noBand, smallMap(), testRuns()), InvalidInputError);
    auto dup = exposures;
    dup.push_back(dup[2]);
    dup.back().dataId.set(Dimension::DayObs, 19990101);  // same visit and detector, another data ID
    EXPECT_THROW(buildQuantumGraph(pipelineByName("single-visit"), dup, smallMap(), testRuns()), InvalidInputError);
    auto twoCorners = exposures;
    twoCorners[0].corners.resize(2);
    EXPECT_THROW(buildQuantumGraph(pipelineByName("drp-full"), twoCorners, smallMap(), testRuns()), InvalidInputError);

    auto pipeline = pipelineByName("single-visit");
    pipeline[1].inputs.push_back("nothingMakesThis");
    EXPECT_THROW(buildQuantumGraph(pipeline, exposures, smallMap(), testRuns()), InvalidInputError);
    pipeline = pipelineByName("single-visit");
    std::swap(pipeline[0], pipeline[1]);  // measureVisitPsf before its producer
    EXPECT_THROW(buildQuantumGraph(pipeline, exposures, smallMap(), testRuns()), InvalidInputError);
    pipeline = pipelineByName("single-visit");
    pipeline[4].outputs.push_back("src");  // two producers
    EXPECT_THROW(buildQuantumGraph(pipeline, exposures, smallMap(), testRuns()), InvalidInputError);
    pipeline = pipelineByName("single-visit");
    pipeline[1].inputs.push_back("bias");  // calibrations only for visit-detector tasks
    EXPECT_THROW(buildQuantumGraph(pipeline, exposures, smallMap(), testRuns()), InvalidInputError);
}

TEST(QuantumGraph, HandMadeGraph) {
    QuantumGraph g(pipelineByName("single-visit"));
    const DataId vd{{"instrument", "X"}, {"band", "r"}, {"visit", 1}, {"detector", 2}};
    const auto raw = g.addDataset({"raw", "r", vd});
    EXPECT_EQ(g.addDataset({"raw", "r", vd}), raw);
    const auto calexp = g.addDataset({"calexp", "o", vd});
    EXPECT_NE(calexp, raw);
    const auto q0 = g.addQuantum(0, vd, {raw}, {calexp}, 7, 1.0f);
    EXPECT_EQ(g.datasets()[calexp].producer, int(q0));
    EXPECT_THROW(g.addQuantum(0, vd, {raw}, {calexp}, 7, 1.0f), LogicError);  // second producer
    EXPECT_THROW(g.addQuantum(0, vd, {99}, {}, 7, 1.0f), LogicError);
    const auto table = g.addDataset({"sourceTable_visit", "o", vd.subset({Dimension::Instrument, Dimension::Band, Dimension::Visit})});
    const auto q1 = g.addQuantum(1, vd.subset({Dimension::Visit}), {calexp, raw}, {table}, -1, 0.5f);
    EXPECT_EQ(g.quanta()[q1].upstream, std::vector<std::uint32_t>{q0});
    EXPECT_EQ(g.ref(calexp), (DatasetRef{"calexp", "o", vd}));
    EXPECT_EQ(g.tractCosts(), (std::vector<std::pair<int, double>>{{7, 1.0}}));
    EXPECT_FALSE(g.findDataset(DatasetRef{"calexp", "o", DataId{{"visit", 3}}}).has_value());
    EXPECT_EQ(g.quanta()[q0].dataId.getInt(Dimension::Visit), 1);
    EXPECT_THROW(g.quanta()[q0].dataId.getInt(Dimension::Tract), NotFoundError);
    EXPECT_THROW(g.quanta()[q0].dataId.getInt(Dimension::Band), LogicError);
    EXPECT_EQ(g.string(g.quanta()[q0].dataId.stringIndex(Dimension::Band)), "r");
    EXPECT_EQ(g.unpack(g.pack(vd)), vd);
    checkStructure(g);
}

// --- QuantumSpec bytes ---------------------------------------------------------------------------------

QuantumSpec awkwardSpec() {
    QuantumSpec s;
    s.task = "task with spaces \"and quotes\"";
    s.dataId = DataId{{"instrument", "Cam \\ \"x\""}, {"band", ""}, {"visit", -5}, {"tract", std::int64_t(1) << 40}};
    s.inputs = {{"raw", "run/with space", DataId{{"skymap", "a=b c"}, {"htm", 12345}}},
                {"type\nnewline", "", DataId{}}};
    s.outputs = {{"calexp", std::string("nul\0byte", 8), DataId{{"physical_filter", "r~03 \t"}, {"day_obs", 20240101}}}};
    return s;
}

TEST(QuantumSpec, BytesRoundTrip) {
    const QuantumSpec s = awkwardSpec();
    const std::string bytes = s.toBytes();
    EXPECT_EQ(QuantumSpec::fromBytes(bytes), s);
    EXPECT_EQ(QuantumSpec::fromBytes(QuantumSpec{}.toBytes()), QuantumSpec{});
    // Every quantum of a real graph.
    const QuantumGraph g = buildQuantumGraph(pipelineByName("drp-full"), makeExposures(2, 61), smallMap(), testRuns());
    for (std::uint32_t q = 0; q < g.size(); ++q) {
        const QuantumSpec sq = g.spec(q);
        ASSERT_EQ(QuantumSpec::fromBytes(sq.toBytes()), sq) << g.label(q);
    }
}

TEST(QuantumSpec, RejectsTruncatedAndGarbageBytes) {
    const std::string bytes = awkwardSpec().toBytes();
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_THROW(QuantumSpec::fromBytes(bytes.substr(0, n)), InvalidInputError) << "prefix " << n;
    EXPECT_THROW(QuantumSpec::fromBytes(bytes + "x"), InvalidInputError);
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_int_distribution<int> byte(0, 255);
        std::string garbage(std::size_t(rng() % 200), '\0');
        for (auto& c : garbage) c = char(byte(rng));
        EXPECT_THROW(QuantumSpec::fromBytes(garbage), InvalidInputError) << "seed " << seed;
        // Valid magic, then garbage: still InvalidInputError (a length or count runs past the end).
        std::string tail = std::string("DRPQS1") + std::string(1, char(0xff)) + garbage;
        EXPECT_THROW(QuantumSpec::fromBytes(tail), InvalidInputError) << "seed " << seed;
        // Corrupted bytes of a valid spec: either a valid spec or InvalidInputError, nothing else.
        std::string mutated = bytes;
        for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = char(byte(rng));
        try {
            (void)QuantumSpec::fromBytes(mutated);
        } catch (const InvalidInputError&) {
        }
    }
}

// --- shardTracts -------------------------------------------------------------------------------------

TEST(ShardTracts, BalancedPartitionForRandomCosts) {
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        std::mt19937_64 rng(seed);
        const int nTracts = int(rng() % 40);
        std::vector<std::pair<int, double>> costs;
        std::set<int> ids;
        while (int(ids.size()) < nTracts) ids.insert(int(rng() % 20000));
        std::lognormal_distribution<double> c(0.0, 1.5);
        for (int id : ids) costs.emplace_back(id, seed % 5 == 0 ? 3.0 : c(rng));  // some lists all equal
        std::shuffle(costs.begin(), costs.end(), rng);
        const std::map<int, double> costOf(costs.begin(), costs.end());
        double largest = 0;
        for (const auto& [id, cost] : costs) largest = std::max(largest, cost);
        for (int count = 1; count <= 7; ++count) {
            const auto shares = shardTracts(costs, count);
            ASSERT_EQ(shares.size(), std::size_t(count));
            EXPECT_EQ(shardTracts(costs, count), shares);
            std::multiset<int> seen;
            double minLoad = 1e300, maxLoad = 0;
            for (const auto& s : shares) {
                EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
                double load = 0;
                for (int t : s) {
                    seen.insert(t);
                    load += costOf.at(t);
                }
                minLoad = std::min(minLoad, load);
                maxLoad = std::max(maxLoad, load);
            }
            EXPECT_EQ(seen, std::multiset<int>(ids.begin(), ids.end())) << "seed " << seed << " count " << count;
            EXPECT_LE(maxLoad, minLoad + largest + 1e-9 * (1 + maxLoad)) << "seed " << seed << " count " << count;
        }
    }
    EXPECT_EQ(shardTracts({{5, 1.0}}, 3), (std::vector<std::vector<int>>{{5}, {}, {}}));
    // Ties by tract id: equal costs go round-robin in ascending id.
    EXPECT_EQ(shardTracts({{9, 1.0}, {3, 1.0}, {4, 1.0}, {1, 1.0}}, 2), (std::vector<std::vector<int>>{{1, 4}, {3, 9}}));
    EXPECT_THROW(shardTracts({{1, 1.0}}, 0), InvalidInputError);
    EXPECT_THROW(shardTracts({{1, 1.0}, {1, 2.0}}, 2), InvalidInputError);
    EXPECT_THROW(shardTracts({{1, -1.0}}, 2), InvalidInputError);
}

TEST(ShardTracts, GraphTractsAreSharded) {
    const QuantumGraph g = buildQuantumGraph(pipelineByName("drp-full"), makeExposures(4, 71), smallMap(), testRuns());
    const auto costs = g.tractCosts();
    ASSERT_GE(costs.size(), 2u);
    EXPECT_TRUE(std::is_sorted(costs.begin(), costs.end()));
    double total = 0;
    for (std::uint32_t q = 0; q < g.size(); ++q)
        if (g.quanta()[q].tract >= 0) total += g.quanta()[q].cost;
    double sum = 0;
    for (const auto& [t, c] : costs) sum += c;
    EXPECT_NEAR(sum, total, 1e-6 * total);
    const auto shares = shardTracts(costs, 3);
    std::size_t n = 0;
    for (const auto& s : shares) n += s.size();
    EXPECT_EQ(n, costs.size());
}

}  // namespace
}  // namespace drp
