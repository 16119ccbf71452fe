#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "core/Error.h"
#include "core/Log.h"

using namespace drp;

TEST(Log, LineCarriesTimeLevelRankAndDataId) {
    std::ostringstream os;
    Log::setStream(&os);
    Log::setLevel(LogLevel::VERBOSE);
    Log::setRank(3);
    {
        LogContext ctx("visit=12 detector=4");
        DRP_LOG_VERBOSE("isr", "overscan " << 42);
        DRP_LOG_DEBUG("isr", "hidden");
    }
    DRP_LOG_INFO("drp", "after");
    Log::setStream(nullptr);
    Log::setLevel(LogLevel::INFO);
    Log::setRank(-1);
    std::string out = os.str();
    std::regex line1(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z VERBOSE r3 \[visit=12 detector=4\] isr: overscan 42\n)");
    EXPECT_TRUE(std::regex_search(out, line1)) << out;
    EXPECT_EQ(out.find("hidden"), std::string::npos);
    EXPECT_NE(out.find("r3 drp: after"), std::string::npos) << out;  // context ended
}

TEST(Log, ParseLevels) {
    EXPECT_EQ(Log::parseLevel("verbose"), LogLevel::VERBOSE);
    EXPECT_EQ(Log::parseLevel("WARNING"), LogLevel::WARN);
    EXPECT_EQ(Log::parseLevel("Trace"), LogLevel::TRACE);
    EXPECT_THROW(Log::parseLevel("loud"), ConfigError);
}

TEST(Log, ContextsNest) {
    LogContext outer("visit=1");
    EXPECT_EQ(LogContext::current(), "visit=1");
    {
        LogContext inner("visit=1 detector=2");
        EXPECT_EQ(LogContext::current(), "visit=1 detector=2");
    }
    EXPECT_EQ(LogContext::current(), "visit=1");
}
