#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/Error.h"
#include "core/Table.h"

using namespace drp;

namespace {

struct Keys {
    Key<std::int32_t> i32;
    Key<std::int64_t> i64;
    Key<float> f32;
    Key<double> f64;
    Key<bool> flag;
    Key<std::string> str;
};

Schema makeSchema(Keys& k) {
    Schema s;
    k.i32 = s.addField<std::int32_t>("nPix", "number of pixels", "pixel");
    k.i64 = s.addField<std::int64_t>("id", "unique id");
    k.f32 = s.addField<float>("psfFlux", "PSF flux", "nJy");
    k.f64 = s.addField<double>("ra", "right ascension", "deg");
    k.flag = s.addField<bool>("flag_edge", "touches the edge");
    k.str = s.addField<std::string>("band", "filter band");
    return s;
}

Table randomTable(const Schema& s, const Keys& k, std::size_t rows, std::mt19937_64& rng) {
    Table t(s, rows);
    std::uniform_int_distribution<std::int64_t> any64;
    std::uniform_int_distribution<std::int32_t> any32(std::numeric_limits<std::int32_t>::min(),
                                                      std::numeric_limits<std::int32_t>::max());
    std::normal_distribution<double> g(0, 1e3);
    std::uniform_int_distribution<int> len(0, 12), ch('a', 'z');
    for (std::size_t r = 0; r < rows; ++r) {
        t.column(k.i32)[r] = any32(rng);
        t.column(k.i64)[r] = any64(rng);
        t.column(k.f32)[r] = static_cast<float>(g(rng));
        t.column(k.f64)[r] = g(rng);
        t.column(k.flag)[r] = rng() & 1;
        std::string s2(static_cast<std::size_t>(len(rng)), 'x');
        for (auto& c : s2) c = static_cast<char>(ch(rng));
        t.column(k.str)[r] = s2;
    }
    return t;
}

}  // namespace

TEST(Schema, TypedKeysHaveFixedIndicesAndFieldInfo) {
    Keys k;
    Schema s = makeSchema(k);
    EXPECT_EQ(s.size(), 6u);
    EXPECT_EQ(k.i32.index(), 0u);
    EXPECT_EQ(k.str.index(), 5u);
    EXPECT_EQ(s.field(k.f32).unit, "nJy");
    EXPECT_EQ(s.field(k.f32).doc, "PSF flux");
    EXPECT_EQ(s.field(k.flag).type, FieldType::Flag);
    EXPECT_EQ(s.find<float>("psfFlux"), k.f32);
    EXPECT_EQ(s.find<std::string>("band"), k.str);
    // Adding more fields never moves existing keys.
    Schema extended = s;
    auto extra = extended.addField<double>("extra", "added later");
    EXPECT_EQ(extra.index(), 6u);
    EXPECT_EQ(extended.find<float>("psfFlux"), k.f32);
    Table t(extended, 3);
    t.column(k.f32)[2] = 7.5f;
    EXPECT_EQ(t.column<float>("psfFlux")[2], 7.5f);
    EXPECT_FALSE(Key<double>().isValid());
}

TEST(Schema, RejectsDuplicatesAndBadLookups) {
    Keys k;
    Schema s = makeSchema(k);
    EXPECT_THROW(s.addField<double>("ra", "again"), LogicError);
    EXPECT_THROW(s.addField<float>("ra", "again, other type"), LogicError);
    EXPECT_THROW(s.addField<double>("", "no name"), LogicError);
    EXPECT_THROW(s.addField<double>("a/b", "slash"), LogicError);
    EXPECT_EQ(s.size(), 6u);
    EXPECT_THROW(s.find<double>("nope"), NotFoundError);
    EXPECT_THROW(s.find<float>("ra"), LogicError);  // ra is float64
    EXPECT_TRUE(s.contains("ra"));
    EXPECT_FALSE(s.contains("dec"));
}

TEST(Table, RowsStartZeroAndColumnsAreContiguous) {
    Keys k;
    Table t(makeSchema(k));
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(t.addRow(), 0u);
    EXPECT_EQ(t.addRow(), 1u);
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.column(k.i64)[1], 0);
    EXPECT_EQ(t.column(k.flag)[1], 0);
    EXPECT_EQ(t.column(k.str)[1], "");
    t.resize(100);
    auto ra = t.column(k.f64);
    ASSERT_EQ(ra.size(), 100u);
    for (std::size_t i = 0; i < ra.size(); ++i) ra[i] = double(i) * 0.5;
    EXPECT_EQ(&ra[99] - &ra[0], 99);  // contiguous
    EXPECT_EQ(t.column<double>("ra")[42], 21.0);
    t.at(k.flag, 5) = true;
    EXPECT_EQ(t.column(k.flag)[5], 1);
    EXPECT_THROW(t.at(k.flag, 100), LogicError);
    EXPECT_THROW(t.column<float>("ra"), LogicError);
    EXPECT_THROW(t.column<double>("dec"), NotFoundError);
    // A key from a longer schema is refused, not read out of bounds.
    Schema big = t.schema();
    auto beyond = big.addField<double>("beyond", "x");
    EXPECT_THROW(t.column(beyond), LogicError);
}

TEST(Table, AddColumnAppendsZerosAndLeavesSharedSchemasAlone) {
    Keys k;
    Table t(makeSchema(k), 7);
    t.column(k.f64)[3] = 2.5;
    const Table before = t;  // shares the schema
    const std::size_t fields = t.schema().size();
    auto used = t.addColumn<bool>("calib_psf_used", "a PSF star");
    auto weight = t.addColumn<double>("w", "a weight", "pixel");
    EXPECT_EQ(used.index(), fields);
    EXPECT_EQ(t.schema().size(), fields + 2);
    EXPECT_EQ(t.schema().field(weight.index()).unit, "pixel");
    ASSERT_EQ(t.column(used).size(), 7u);
    for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(t.column(used)[i], 0);
    t.column(used)[4] = 1;
    EXPECT_EQ(t.column<bool>("calib_psf_used")[4], 1);
    EXPECT_EQ(t.column(k.f64)[3], 2.5);  // the old columns as they were
    EXPECT_EQ(before.schema().size(), fields);
    EXPECT_THROW(t.addColumn<double>("ra", "taken"), LogicError);
    EXPECT_EQ(t.schema().size(), fields + 2);
    t.resize(9);  // new rows in the new column too
    EXPECT_EQ(t.column(weight).size(), 9u);
}

TEST(Table, ConcatenationKeepsEveryRowInOrderManySeeds) {
    Keys k;
    Schema s = makeSchema(k);
    for (std::uint64_t seed = 1; seed <= 25; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<Table> parts;
        std::size_t nParts = 1 + rng() % 5;
        for (std::size_t p = 0; p < nParts; ++p) parts.push_back(randomTable(s, k, rng() % 40, rng));
        parts[0].metadata().set("SEED", static_cast<std::int64_t>(seed));
        Table all = Table::concatenate(parts);
        std::size_t total = 0;
        for (const auto& p : parts) total += p.size();
        ASSERT_EQ(all.size(), total);
        EXPECT_EQ(all.metadata().getInt("SEED"), static_cast<std::int64_t>(seed));
        std::size_t row = 0;
        for (const auto& p : parts) {
            for (std::size_t r = 0; r < p.size(); ++r, ++row) {
                ASSERT_EQ(all.column(k.i32)[row], p.column(k.i32)[r]);
                ASSERT_EQ(all.column(k.i64)[row], p.column(k.i64)[r]);
                ASSERT_EQ(all.column(k.f32)[row], p.column(k.f32)[r]);
                ASSERT_EQ(all.column(k.f64)[row], p.column(k.f64)[r]);
                ASSERT_EQ(all.column(k.flag)[row], p.column(k.flag)[r]);
                ASSERT_EQ(all.column(k.str)[row], p.column(k.str)[r]);
            }
        }
        // slice undoes concatenation
        std::size_t begin = 0;
        for (const auto& p : parts) {
            Table back = all.slice(begin, p.size());
            back.metadata() = p.metadata();
            EXPECT_TRUE(back.identical(p)) << "seed " << seed;
            begin += p.size();
        }
        // append to self doubles
        Table twice = parts[0];
        twice.append(twice);
        EXPECT_EQ(twice.size(), 2 * parts[0].size());
    }
}

TEST(Table, AppendRejectsDifferentSchemas) {
    Keys k;
    Table a(makeSchema(k), 2);
    Schema other;
    other.addField<double>("ra", "right ascension", "deg");
    Table b(other, 2);
    EXPECT_THROW(a.append(b), LogicError);
    EXPECT_THROW(Table::concatenate({a, b}), LogicError);
    EXPECT_THROW(Table::concatenate({}), LogicError);
    EXPECT_EQ(a.size(), 2u);
    // Same names but a different unit is a different schema.
    Schema s1, s2;
    s1.addField<double>("x", "x", "pixel");
    s2.addField<double>("x", "x", "arcsec");
    Table c(s1), d(s2);
    EXPECT_THROW(c.append(d), LogicError);
}

TEST(Table, IdenticalIsBitExactIncludingNaNPayloads) {
    Schema s;
    auto x = s.addField<double>("x", "x");
    Table a(s, 2), b(s, 2);
    a.column(x)[0] = b.column(x)[0] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE(a.identical(b));
    std::uint64_t bits = 0x7ff8000000000123ULL;  // another NaN payload
    std::memcpy(&b.column(x)[0], &bits, 8);
    EXPECT_FALSE(a.identical(b));
    b.column(x)[0] = a.column(x)[0];
    b.column(x)[1] = -0.0;
    EXPECT_FALSE(a.identical(b));  // +0 vs -0
    b.column(x)[1] = 0.0;
    EXPECT_TRUE(a.identical(b));
    b.metadata().set("K", 1);
    EXPECT_FALSE(a.identical(b));
}
