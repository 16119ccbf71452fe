#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_set>

#include "core/DataId.h"
#include "core/Error.h"

using namespace drp;

TEST(DataId, CanonicalStringOrderIsFixed) {
    DataId a{{"detector", 3}, {"visit", 12}};
    EXPECT_EQ(a.toString(), "visit=12 detector=3");
    DataId b;
    b.set(Dimension::Patch, 41).set(Dimension::Band, "r").set(Dimension::Tract, 9813).set(Dimension::Skymap, "rings");
    EXPECT_EQ(b.toString(), "band=r tract=9813 patch=41 skymap=rings");
    EXPECT_EQ(DataId().toString(), "");
    EXPECT_EQ(a.getInt(Dimension::Visit), 12);
    EXPECT_EQ(b.getString(Dimension::Band), "r");
    EXPECT_EQ(a.size(), 2u);
    EXPECT_EQ(a.dimensions(), (std::vector<Dimension>{Dimension::Visit, Dimension::Detector}));
    EXPECT_THROW(a.get(Dimension::Band), NotFoundError);
}

TEST(DataId, KindsAreEnforced) {
    DataId id;
    EXPECT_THROW(id.set(Dimension::Visit, "12"), LogicError);
    EXPECT_THROW(id.set(Dimension::Band, 3), LogicError);
    EXPECT_THROW(DataId({{"nonsense", 1}}), InvalidInputError);
    EXPECT_THROW(DataId({{"visit", "x"}}), LogicError);
}

TEST(DataId, ParseAcceptsCanonicalAndLooseForms) {
    EXPECT_EQ(DataId::parse("visit=12 detector=3"), (DataId{{"visit", 12}, {"detector", 3}}));
    EXPECT_EQ(DataId::parse("  detector=3\tvisit=12  "), (DataId{{"visit", 12}, {"detector", 3}}));
    EXPECT_EQ(DataId::parse("instrument=LSSTCam day_obs=20261121 visit=-5"),
              (DataId{{"instrument", "LSSTCam"}, {"day_obs", 20261121}, {"visit", -5}}));
    EXPECT_EQ(DataId::parse("band=\"has space\""), (DataId{{"band", "has space"}}));
    EXPECT_EQ(DataId::parse(""), DataId());
}

TEST(DataId, ParseRejectsBadInput) {
    for (const char* bad : {"visit", "visit=", "visit=abc", "visit=12x", "bogus=1", "visit=1 visit=2", "band=\"open",
                            "visit=\"12\"", "=3", "visit=1,detector=2", "band=\"a\"b", "visit=99999999999999999999"}) {
        EXPECT_THROW(DataId::parse(bad), InvalidInputError) << bad;
    }
}

TEST(DataId, RandomRoundTripsThroughTextManySeeds) {
    const std::string alphabet = "abcXYZ019_.:,+- \"\\=/\t";
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        std::mt19937_64 rng(seed);
        DataId id;
        for (Dimension d : allDimensions()) {
            if (rng() % 2) continue;
            if (dimensionIsString(d)) {
                std::string s(rng() % 6, 'a');
                for (auto& c : s) c = alphabet[rng() % alphabet.size()];
                if (rng() % 5 == 0) s = std::to_string(rng() % 100);  // numeric-looking string
                id.set(d, s);
            } else {
                id.set(d, static_cast<std::int64_t>(rng()) >> (rng() % 64));
            }
        }
        std::string text = id.toString();
        DataId back = DataId::parse(text);
        ASSERT_EQ(back, id) << "seed " << seed << ": " << text;
        ASSERT_EQ(back.hash(), id.hash());
        ASSERT_EQ(back.toString(), text);
    }
}

TEST(DataId, OrderingEqualityAndHashing) {
    DataId a{{"visit", 1}, {"detector", 2}};
    DataId b{{"visit", 1}, {"detector", 3}};
    DataId c{{"visit", 2}};
    DataId d{{"band", "g"}, {"visit", 1}};
    EXPECT_LT(a, b);
    EXPECT_LT(a, c);           // visit 1 < visit 2
    EXPECT_LT(c, d);           // band absent < band present
    EXPECT_NE(a, b);
    EXPECT_EQ(a, DataId::parse(a.toString()));
    std::vector<DataId> v{d, c, b, a};
    std::sort(v.begin(), v.end());
    EXPECT_EQ(v, (std::vector<DataId>{a, b, c, d}));
    std::unordered_set<DataId> set{a, b, c, d, DataId{{"detector", 2}, {"visit", 1}}};
    EXPECT_EQ(set.size(), 4u);
    EXPECT_EQ(std::hash<DataId>{}(a), DataId::parse("detector=2 visit=1").hash());
    // Hashes of many distinct IDs rarely collide.
    std::unordered_set<std::size_t> hashes;
    for (int v1 = 0; v1 < 100; ++v1)
        for (int det = 0; det < 100; ++det) hashes.insert(DataId{{"visit", v1}, {"detector", det}}.hash());
    EXPECT_GT(hashes.size(), 9990u);
}

TEST(DataId, HtmShardDimension) {
    // The reference-catalog shard dimension comes last in canonical order and takes an integer.
    EXPECT_EQ(allDimensions().size(), 10u);
    EXPECT_EQ(allDimensions().back(), Dimension::Htm);
    EXPECT_STREQ(dimensionName(Dimension::Htm), "htm");
    EXPECT_EQ(dimensionFromName("htm"), Dimension::Htm);
    EXPECT_FALSE(dimensionIsString(Dimension::Htm));
    // The existing dimensions keep their order and names.
    const char* names[] = {"instrument", "band", "physical_filter", "day_obs", "visit",
                           "detector",   "tract", "patch",          "skymap"};
    for (std::size_t i = 0; i < 9; ++i) {
        EXPECT_EQ(static_cast<std::size_t>(allDimensions()[i]), i);
        EXPECT_STREQ(dimensionName(allDimensions()[i]), names[i]);
    }
    DataId shard{{"htm", 903281}};
    EXPECT_EQ(shard.toString(), "htm=903281");
    EXPECT_EQ(shard.getInt(Dimension::Htm), 903281);
    EXPECT_EQ(DataId::parse("htm=903281 skymap=rings"), (DataId{{"skymap", "rings"}, {"htm", 903281}}));
    EXPECT_EQ((DataId{{"htm", 5}, {"skymap", "rings"}}).toString(), "skymap=rings htm=5");
    EXPECT_THROW(DataId({{"htm", "N01"}}), LogicError);
    EXPECT_THROW(DataId::parse("htm=N01"), InvalidInputError);
    EXPECT_LT((DataId{{"htm", 8}}), (DataId{{"htm", 9}}));
    EXPECT_LT((DataId{{"skymap", "a"}}), (DataId{{"skymap", "a"}, {"htm", 8}}));
    EXPECT_NE((DataId{{"htm", 8}}).hash(), (DataId{{"patch", 8}}).hash());
}

TEST(DataId, SubsetAndMatches) {
    DataId full{{"instrument", "LSSTCam"}, {"band", "r"}, {"visit", 12}, {"detector", 3}};
    DataId sub = full.subset({Dimension::Visit, Dimension::Detector, Dimension::Tract});
    EXPECT_EQ(sub, (DataId{{"visit", 12}, {"detector", 3}}));
    EXPECT_TRUE(full.matches(sub));
    EXPECT_TRUE(full.matches(DataId()));
    EXPECT_FALSE(sub.matches(full));
    EXPECT_FALSE(full.matches(DataId{{"visit", 13}}));
    full.erase(Dimension::Band);
    EXPECT_FALSE(full.has(Dimension::Band));
}
