// ConfigBinder: binds "section.key" names to the fields of plain config structs, so one config can
// be filled from INI-style files ([section] + "key = value" lines), from --set key=value options,
// and dumped back as the effective config for provenance. Unknown keys and unparsable values are
// ConfigErrors that name the source and line.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace drp {

class ConfigBinder {
public:
    void bind(const std::string& key, int& field, const std::string& doc);
    void bind(const std::string& key, std::int64_t& field, const std::string& doc);
    void bind(const std::string& key, std::uint64_t& field, const std::string& doc);
    void bind(const std::string& key, double& field, const std::string& doc);
    void bind(const std::string& key, bool& field, const std::string& doc);
    void bind(const std::string& key, std::string& field, const std::string& doc);
    /// Comma-separated lists.
    void bind(const std::string& key, std::vector<std::string>& field, const std::string& doc);
    void bind(const std::string& key, std::vector<double>& field, const std::string& doc);
    /// Fixed-length lists (e.g. one value per band ugrizy); the value must have exactly 6 items.
    void bind(const std::string& key, std::array<double, 6>& field, const std::string& doc);

    /// Set one value from text; `source` names where it came from in error messages.
    void set(const std::string& key, const std::string& value, const std::string& source = "--set");
    /// Parse "key=value".
    void setAssignment(const std::string& assignment, const std::string& source = "--set");
    /// Parse INI text: '#' or ';' comments, [section] headers prefixing keys with "section.", key = value.
    void parseText(const std::string& text, const std::string& sourceName);
    void parseFile(const std::string& path);

    bool has(const std::string& key) const { return entries_.count(key) > 0; }
    std::vector<std::string> keys() const;
    /// The current value of every key as INI text grouped by section, with docs as comments.
    std::string dump(bool withDocs = true) const;
    /// One line per key: "key = value" (for provenance records).
    std::map<std::string, std::string> values() const;

private:
    struct Entry {
        std::function<void(const std::string&)> parse;
        std::function<std::string()> format;
        std::string doc;
    };
    void add(const std::string& key, Entry entry);
    std::map<std::string, Entry> entries_;
};

}  // namespace drp
