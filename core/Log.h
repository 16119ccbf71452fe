// Logging with levels. Every line carries UTC time, level, MPI rank and the current data ID:
//   2026-11-21T10:12:00.123Z INFO    r0 [visit=12 detector=3] isr: overscan subtracted
// The driver sets the rank once; a LogContext names the data ID being worked on in this thread.
#pragma once

#include <iosfwd>
#include <sstream>
#include <string>

namespace drp {

enum class LogLevel { TRACE = 0, DEBUG = 1, VERBOSE = 2, INFO = 3, WARN = 4, ERROR = 5, FATAL = 6, OFF = 7 };

class Log {
public:
    static void setLevel(LogLevel level);
    static LogLevel level();
    /// Parse "trace", "debug", "verbose", "info", "warn", "error", "fatal", "off" (any case);
    /// throws ConfigError on anything else.
    static LogLevel parseLevel(const std::string& name);
    static const char* levelName(LogLevel level);
    static void setRank(int rank);
    /// Send lines to `os` instead of std::cerr (tests); nullptr restores std::cerr.
    static void setStream(std::ostream* os);
    static bool enabled(LogLevel level) { return level >= Log::level(); }
    static void write(LogLevel level, const std::string& component, const std::string& message);
    /// The formatted line (without newline) as write() would print it; for tests.
    static std::string formatLine(LogLevel level, const std::string& component, const std::string& message);
};

/// While alive, log lines of this thread carry `dataId`; contexts nest (inner replaces outer).
class LogContext {
public:
    explicit LogContext(std::string dataId);
    ~LogContext();
    LogContext(const LogContext&) = delete;
    LogContext& operator=(const LogContext&) = delete;
    static const std::string& current();

private:
    std::string previous_;
};

}  // namespace drp

#define DRP_LOG(level, component, expr)                                        \
    do {                                                                       \
        if (::drp::Log::enabled(level)) {                                      \
            std::ostringstream drp_log_os_;                                    \
            drp_log_os_ << expr;                                               \
            ::drp::Log::write(level, component, drp_log_os_.str());            \
        }                                                                      \
    } while (0)

#define DRP_LOG_TRACE(component, expr) DRP_LOG(::drp::LogLevel::TRACE, component, expr)
#define DRP_LOG_DEBUG(component, expr) DRP_LOG(::drp::LogLevel::DEBUG, component, expr)
#define DRP_LOG_VERBOSE(component, expr) DRP_LOG(::drp::LogLevel::VERBOSE, component, expr)
#define DRP_LOG_INFO(component, expr) DRP_LOG(::drp::LogLevel::INFO, component, expr)
#define DRP_LOG_WARN(component, expr) DRP_LOG(::drp::LogLevel::WARN, component, expr)
#define DRP_LOG_ERROR(component, expr) DRP_LOG(::drp::LogLevel::ERROR, component, expr)
