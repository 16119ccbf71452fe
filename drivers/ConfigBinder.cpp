#include "drivers/ConfigBinder.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/Error.h"

namespace drp {
namespace {

std::string trim(const std::string& s) {
    std::size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> splitList(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        item = trim(item);
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

template <typename T>
T parseNumber(const std::string& text) {
    T v{};
    const char* b = text.data();
    const char* e = b + text.size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p != e) throw ConfigError("'" + text + "' is not a valid number");
    return v;
}

template <>
double parseNumber<double>(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
        throw ConfigError("'" + text + "' is not a valid number");
    return v;
}

std::string formatDouble(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace

void ConfigBinder::add(const std::string& key, Entry entry) {
    if (entries_.count(key)) throw LogicError("config key '" + key + "' bound twice");
    entries_[key] = std::move(entry);
}

void ConfigBinder::bind(const std::string& key, int& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = parseNumber<int>(s); }, [&f] { return std::to_string(f); }, doc});
}
void ConfigBinder::bind(const std::string& key, std::int64_t& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = parseNumber<std::int64_t>(s); }, [&f] { return std::to_string(f); }, doc});
}
void ConfigBinder::bind(const std::string& key, std::uint64_t& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = parseNumber<std::uint64_t>(s); }, [&f] { return std::to_string(f); }, doc});
}
void ConfigBinder::bind(const std::string& key, double& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = parseNumber<double>(s); }, [&f] { return formatDouble(f); }, doc});
}
void ConfigBinder::bind(const std::string& key, bool& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) {
                  if (s == "true" || s == "yes" || s == "on" || s == "1")
                      f = true;
                  else if (s == "false" || s == "no" || s == "off" || s == "0")
                      f = false;
                  else
                      throw ConfigError("'" + s + "' is not a boolean (true/false)");
              },
              [&f] { return std::string(f ? "true" : "false"); }, doc});
}
void ConfigBinder::bind(const std::string& key, std::string& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = s; }, [&f] { return f; }, doc});
}
void ConfigBinder::bind(const std::string& key, std::vector<std::string>& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) { f = splitList(s); },
              [&f] {
                  std::string out;
                  for (std::size_t i = 0; i < f.size(); ++i) out += (i ? ", " : "") + f[i];
                  return out;
              },
              doc});
}
void ConfigBinder::bind(const std::string& key, std::vector<double>& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) {
                  f.clear();
                  for (const auto& item : splitList(s)) f.push_back(parseNumber<double>(item));
              },
              [&f] {
                  std::string out;
                  for (std::size_t i = 0; i < f.size(); ++i) {
                      if (i) out += ", ";
                      out += formatDouble(f[i]);
                  }
                  return out;
              },
              doc});
}

void ConfigBinder::bind(const std::string& key, std::array<double, 6>& f, const std::string& doc) {
    add(key, {[&f](const std::string& s) {
                  auto items = splitList(s);
                  if (items.size() != f.size())
                      throw ConfigError("expected " + std::to_string(f.size()) + " comma-separated values");
                  for (std::size_t i = 0; i < f.size(); ++i) f[i] = parseNumber<double>(items[i]);
              },
              [&f] {
                  std::string out;
                  for (std::size_t i = 0; i < f.size(); ++i) {
                      if (i) out += ", ";
                      out += formatDouble(f[i]);
                  }
                  return out;
              },
              doc});
}

void ConfigBinder::set(const std::string& key, const std::string& value, const std::string& source) {
    auto it = entries_.find(key);
    if (it == entries_.end()) throw ConfigError("unknown config key '" + key + "' (" + source + ")");
    try {
        it->second.parse(trim(value));
    } catch (const ConfigError& e) {
        throw ConfigError("bad value for '" + key + "' (" + source + "): " + e.message());
    }
}

void ConfigBinder::setAssignment(const std::string& assignment, const std::string& source) {
    auto eq = assignment.find('=');
    if (eq == std::string::npos) throw ConfigError("expected key=value, got '" + assignment + "' (" + source + ")");
    set(trim(assignment.substr(0, eq)), assignment.substr(eq + 1), source);
}

void ConfigBinder::parseText(const std::string& text, const std::string& sourceName) {
    std::istringstream in(text);
    std::string line, section;
    int lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        std::string t = trim(line);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        std::string where = sourceName + ":" + std::to_string(lineNo);
        if (t.front() == '[') {
            if (t.back() != ']') throw ConfigError("unterminated section header (" + where + ")");
            section = trim(t.substr(1, t.size() - 2));
            continue;
        }
        auto hash = t.find(" #");
        if (hash != std::string::npos) t = trim(t.substr(0, hash));
        auto eq = t.find('=');
        if (eq == std::string::npos) throw ConfigError("expected 'key = value' (" + where + ")");
        std::string key = trim(t.substr(0, eq));
        set(section.empty() ? key : section + "." + key, t.substr(eq + 1), where);
    }
}

void ConfigBinder::parseFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError("cannot open config file", path);
    std::stringstream ss;
    ss << in.rdbuf();
    parseText(ss.str(), path);
}

std::vector<std::string> ConfigBinder::keys() const {
    std::vector<std::string> out;
    for (const auto& [k, e] : entries_) out.push_back(k);
    return out;
}

std::map<std::string, std::string> ConfigBinder::values() const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : entries_) out[k] = e.format();
    return out;
}

std::string ConfigBinder::dump(bool withDocs) const {
    // Keys without a section first (an INI reader would otherwise put them in the last section).
    std::string out, section;
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto& [k, e] : entries_) {
            auto dot = k.rfind('.');
            if ((dot == std::string::npos) != (pass == 0)) continue;
            std::string sec = dot == std::string::npos ? std::string() : k.substr(0, dot);
            std::string name = dot == std::string::npos ? k : k.substr(dot + 1);
            if (sec != section) {
                out += "\n[" + sec + "]\n";
                section = sec;
            }
            if (withDocs && !e.doc.empty()) out += "# " + e.doc + "\n";
            out += name + " = " + e.format() + "\n";
        }
    }
    return out;
}

}  // namespace drp
