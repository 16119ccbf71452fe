#include <gtest/gtest.h>

#include "core/Error.h"
#include "drivers/ConfigBinder.h"

using namespace drp;

namespace {
struct Cfg {
    int n = 3;
    double x = 0.5;
    bool flag = false;
    std::string name = "a";
    std::vector<std::string> bands{"g", "r"};
    std::vector<double> coeffs{1.0};
    std::uint64_t seed = 7;
};
void bindAll(ConfigBinder& b, Cfg& c) {
    b.bind("camera.n", c.n, "count");
    b.bind("camera.x", c.x, "a number");
    b.bind("flag", c.flag, "a flag");
    b.bind("obs.name", c.name, "a name");
    b.bind("obs.bands", c.bands, "bands");
    b.bind("obs.coeffs", c.coeffs, "coefficients");
    b.bind("seed", c.seed, "seed");
}
}  // namespace

TEST(ConfigBinder, IniSectionsAndOverrides) {
    Cfg c;
    ConfigBinder b;
    bindAll(b, c);
    b.parseText("# comment\nflag = yes\nseed = 18446744073709551615\n[camera]\nn = 12  # trailing comment\nx = 1e-3\n"
                "[obs]\nname = LSST Cam\nbands = u, g ,r,i\ncoeffs = 0.1, -2.5e3\n",
                "test.cfg");
    EXPECT_EQ(c.n, 12);
    EXPECT_DOUBLE_EQ(c.x, 1e-3);
    EXPECT_TRUE(c.flag);
    EXPECT_EQ(c.name, "LSST Cam");
    EXPECT_EQ(c.bands, (std::vector<std::string>{"u", "g", "r", "i"}));
    EXPECT_EQ(c.coeffs, (std::vector<double>{0.1, -2.5e3}));
    EXPECT_EQ(c.seed, 18446744073709551615ull);
    b.setAssignment("camera.n=5");
    EXPECT_EQ(c.n, 5);
}

TEST(ConfigBinder, DumpRoundTripsExactly) {
    Cfg a, b2;
    a.x = 0.1 + 0.2;
    a.coeffs = {1.0 / 3.0, 2e-300};
    a.name.append(" and more");
    ConfigBinder ba, bb;
    bindAll(ba, a);
    bindAll(bb, b2);
    bb.parseText(ba.dump(), "dump");
    EXPECT_EQ(ba.values(), bb.values());
    EXPECT_EQ(b2.x, a.x);
    EXPECT_EQ(b2.coeffs, a.coeffs);
}

TEST(ConfigBinder, ErrorsNameSourceAndLine) {
    Cfg c;
    ConfigBinder b;
    bindAll(b, c);
    try {
        b.parseText("[camera]\nn = 4\nnope = 1\n", "my.cfg");
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("camera.nope"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("my.cfg:3"), std::string::npos) << e.what();
    }
    EXPECT_THROW(b.set("camera.n", "4.5"), ConfigError);
    EXPECT_THROW(b.set("camera.x", "abc"), ConfigError);
    EXPECT_THROW(b.set("flag", "maybe"), ConfigError);
    EXPECT_THROW(b.parseText("[camera\n", "x"), ConfigError);
    EXPECT_THROW(b.parseFile("/nonexistent/file.cfg"), ConfigError);
    EXPECT_THROW(b.bind("flag", c.flag, "again"), LogicError);
}
