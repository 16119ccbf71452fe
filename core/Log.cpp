#include "core/Log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>

#include "core/Error.h"

namespace drp {
namespace {
std::atomic<int> g_level{int(LogLevel::INFO)};
std::atomic<int> g_rank{-1};
std::atomic<std::ostream*> g_stream{nullptr};
std::mutex g_mutex;
thread_local std::string t_dataId;
}  // namespace

void Log::setLevel(LogLevel level) { g_level = int(level); }
LogLevel Log::level() { return LogLevel(g_level.load()); }
void Log::setRank(int rank) { g_rank = rank; }
void Log::setStream(std::ostream* os) { g_stream = os; }

const char* Log::levelName(LogLevel level) {
    switch (level) {
        case LogLevel::TRACE: return "TRACE";
        case LogLevel::DEBUG: return "DEBUG";
        case LogLevel::VERBOSE: return "VERBOSE";
        case LogLevel::INFO: return "INFO";
        case LogLevel::WARN: return "WARN";
        case LogLevel::ERROR: return "ERROR";
        case LogLevel::FATAL: return "FATAL";
        case LogLevel::OFF: return "OFF";
    }
    return "?";
}

LogLevel Log::parseLevel(const std::string& name) {
    std::string up = name;
    std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return char(std::toupper(c)); });
    if (up == "WARNING") up = "WARN";
    for (int l = 0; l <= int(LogLevel::OFF); ++l)
        if (up == levelName(LogLevel(l))) return LogLevel(l);
    throw ConfigError("unknown log level '" + name + "' (use trace, debug, verbose, info, warn, error, fatal, off)");
}

std::string Log::formatLine(LogLevel level, const std::string& component, const std::string& message) {
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    int millis = int(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[80];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    char head[160];
    int rank = g_rank.load();
    if (rank >= 0)
        std::snprintf(head, sizeof head, "%s %-7s r%d", stamp, levelName(level), rank);
    else
        std::snprintf(head, sizeof head, "%s %-7s r-", stamp, levelName(level));
    std::string line = head;
    if (!t_dataId.empty()) line += " [" + t_dataId + "]";
    line += " " + component + ": " + message;
    return line;
}

void Log::write(LogLevel level, const std::string& component, const std::string& message) {
    if (!enabled(level)) return;
    std::string line = formatLine(level, component, message);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::ostream* os = g_stream.load();
    if (!os) {  // keep log lines in order with what the program prints on stdout
        std::fflush(stdout);
        std::cout.flush();
    }
    (os ? *os : std::cerr) << line << '\n' << std::flush;
}

LogContext::LogContext(std::string dataId) : previous_(std::move(t_dataId)) { t_dataId = std::move(dataId); }
LogContext::~LogContext() { t_dataId = std::move(previous_); }
const std::string& LogContext::current() { return t_dataId; }

}  // namespace drp
