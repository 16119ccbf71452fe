#include <gtest/gtest.h>

#include "core/Error.h"
#include "core/PropertyList.h"

using namespace drp;

TEST(PropertyList, TypedValuesKeepOrderAndComments) {
    PropertyList pl;
    pl.set("EXPTIME", 30.0, "exposure time (s)");
    pl.set("VISIT", 1234);
    pl.set("FILTER", "r");
    pl.set("FLAG", true);
    EXPECT_EQ(pl.keys(), (std::vector<std::string>{"EXPTIME", "VISIT", "FILTER", "FLAG"}));
    EXPECT_DOUBLE_EQ(pl.getDouble("EXPTIME"), 30.0);
    EXPECT_DOUBLE_EQ(pl.getDouble("VISIT"), 1234.0);  // integers read as doubles
    EXPECT_EQ(pl.getInt("VISIT"), 1234);
    EXPECT_EQ(pl.getString("FILTER"), "r");
    EXPECT_TRUE(pl.getBool("FLAG"));
    EXPECT_EQ(pl.comment("EXPTIME"), "exposure time (s)");
    pl.set("VISIT", 99);  // replaced in place
    EXPECT_EQ(pl.keys()[1], "VISIT");
    EXPECT_EQ(pl.getInt("VISIT"), 99);
}

TEST(PropertyList, ErrorsAreTyped) {
    PropertyList pl;
    pl.set("A", "text");
    EXPECT_THROW(pl.getDouble("A"), LogicError);
    EXPECT_THROW(pl.getDouble("B"), NotFoundError);
    EXPECT_DOUBLE_EQ(pl.getDouble("B", 2.5), 2.5);
    try {
        pl.getInt("MISSING");
        FAIL();
    } catch (const NotFoundError& e) {
        EXPECT_NE(std::string(e.what()).find("MISSING"), std::string::npos);
        EXPECT_STREQ(e.kind(), "NotFoundError");
    }
}

TEST(PropertyList, MergeAndFormatFullPrecision) {
    PropertyList a, b;
    a.set("X", 1.0);
    b.set("X", 0.1 + 0.2);
    b.set("Y", std::int64_t(1) << 40);
    a.merge(b);
    EXPECT_EQ(a.size(), 2u);
    EXPECT_EQ(std::stod(PropertyList::format(a.get("X"))), 0.1 + 0.2);
    EXPECT_EQ(PropertyList::format(a.get("Y")), "1099511627776");
}

TEST(Error, MessageNamesFileAndDataId) {
    IoError e("cannot read", "/data/raw.fits", "visit=1 detector=2");
    std::string w = e.what();
    EXPECT_NE(w.find("/data/raw.fits"), std::string::npos);
    EXPECT_NE(w.find("visit=1 detector=2"), std::string::npos);
    EXPECT_EQ(e.file(), "/data/raw.fits");
    EXPECT_STREQ(FitsError("x").kind(), "FitsError");
    EXPECT_THROW(throw FitsError("x"), IoError);  // hierarchy
}
