#include "io/DatasetType.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/Error.h"

namespace drp {

const char* storageClassName(StorageClass s) { return s == StorageClass::Fits ? "fits" : "hdf5"; }

StorageClass parseStorageClass(const std::string& name) {
    if (name == "fits") return StorageClass::Fits;
    if (name == "hdf5") return StorageClass::Hdf5;
    throw ConfigError("unknown storage class '" + name + "' (expected 'fits' or 'hdf5')");
}

namespace {

/// The placeholders of a template in order; throws ConfigError on unbalanced braces.
std::vector<std::string> placeholders(const std::string& tpl, const std::string& typeName) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < tpl.size()) {
        if (tpl[i] == '}') throw ConfigError("dataset type '" + typeName + "': stray '}' in template '" + tpl + "'");
        if (tpl[i] != '{') {
            ++i;
            continue;
        }
        std::size_t j = tpl.find('}', i);
        if (j == std::string::npos)
            throw ConfigError("dataset type '" + typeName + "': unclosed '{' in template '" + tpl + "'");
        out.push_back(tpl.substr(i + 1, j - i - 1));
        i = j + 1;
    }
    return out;
}

void checkPathValue(const std::string& v, const std::string& what) {
    bool ok = !v.empty() && v[0] != '.';
    for (char c : v) ok = ok && c != '/' && static_cast<unsigned char>(c) >= 0x20;
    if (!ok) throw LogicError("value '" + v + "' of " + what + " is not a safe path component");
}

}  // namespace

void DatasetType::validate() const {
    bool nameOk = !name.empty() && std::isalpha(static_cast<unsigned char>(name[0]));
    for (char c : name) nameOk = nameOk && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!nameOk) throw ConfigError("bad dataset type name '" + name + "' (expected [A-Za-z][A-Za-z0-9_]*)");
    if (pathTemplate.empty() || pathTemplate[0] == '/')
        throw ConfigError("dataset type '" + name + "': template must be a relative path");
    for (std::size_t i = 0; i <= pathTemplate.size();) {
        std::size_t j = pathTemplate.find('/', i);
        if (j == std::string::npos) j = pathTemplate.size();
        std::string part = pathTemplate.substr(i, j - i);
        if (part.empty() || part == "." || part == "..")
            throw ConfigError("dataset type '" + name + "': template '" + pathTemplate +
                              "' has an empty, '.' or '..' component");
        i = j + 1;
    }
    std::set<Dimension> dims(dimensions.begin(), dimensions.end());
    if (dims.size() != dimensions.size()) throw ConfigError("dataset type '" + name + "': repeated dimension");
    std::set<std::string> seen;
    for (const auto& p : placeholders(pathTemplate, name)) {
        if (p == "run" || p == "datasetType") {
            seen.insert(p);
            continue;
        }
        Dimension d{};
        try {
            d = dimensionFromName(p);
        } catch (const Error&) {
            throw ConfigError("dataset type '" + name + "': unknown placeholder {" + p + "} in template");
        }
        if (!dims.count(d))
            throw ConfigError("dataset type '" + name + "': placeholder {" + p + "} is not one of its dimensions");
        seen.insert(p);
    }
    if (!seen.count("run")) throw ConfigError("dataset type '" + name + "': template must contain {run}");
}

std::string DatasetType::expand(const std::string& run, const DataId& dataId) const {
    std::string out;
    std::size_t i = 0;
    while (i < pathTemplate.size()) {
        if (pathTemplate[i] != '{') {
            out += pathTemplate[i++];
            continue;
        }
        std::size_t j = pathTemplate.find('}', i);
        if (j == std::string::npos) throw ConfigError("dataset type '" + name + "': unclosed '{' in template");
        std::string p = pathTemplate.substr(i + 1, j - i - 1);
        i = j + 1;
        if (p == "run") {
            out += run;
        } else if (p == "datasetType") {
            out += name;
        } else {
            Dimension d = dimensionFromName(p);
            if (!dataId.has(d))
                throw LogicError("dataset type '" + name + "' needs dimension '" + p + "'", {}, dataId.toString());
            const auto& v = dataId.get(d);
            std::string s = std::holds_alternative<std::int64_t>(v) ? std::to_string(std::get<std::int64_t>(v))
                                                                     : std::get<std::string>(v);
            checkPathValue(s, "dimension '" + p + "'");
            out += s;
        }
    }
    return out;
}

}  // namespace drp
