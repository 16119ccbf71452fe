#include "drivers/campaign/Provenance.h"

#include "core/Error.h"
#include "io/Checksum.h"

namespace drp {

Provenance::Provenance() : softwareVersion(DRP_VERSION) {}

std::string Provenance::configText() const {
    std::string out;
    for (const auto& [k, v] : config) {
        if (!out.empty()) out += ';';
        out += k;
        out += '=';
        out += v;
    }
    return out;
}

std::string Provenance::configHash() const { return checksum64Hex(configText()); }

void Provenance::addTo(PropertyList& md) const {
    md.set("DRPVERS", softwareVersion, "drp version that wrote this file");
    md.set("PRVTASK", task, "provenance: the quantum (task and data ID) that wrote this file");
    md.set("PRVCFGH", configHash(), "provenance: XXH3-64 of PRVCFG");
    md.set("PRVCFG", configText(), "provenance: effective processing config");
    md.set("PRVNIN", PropertyList::Value(std::int64_t(inputs.size())), "provenance: number of input datasets");
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const auto& in = inputs[i];
        md.set("PRVIN" + std::to_string(i + 1), in.datasetType + " " + in.run + " " + in.dataId + " " + in.checksum,
               "provenance: input type, run, data ID, checksum");
    }
}

Provenance Provenance::fromMetadata(const PropertyList& md) {
    if (!md.has("PRVTASK")) throw InvalidInputError("no provenance (PRVTASK) in this file's metadata");
    Provenance p;
    p.task = md.getString("PRVTASK");
    p.softwareVersion = md.has("DRPVERS") ? md.getString("DRPVERS") : std::string();
    std::string text = md.has("PRVCFG") ? md.getString("PRVCFG") : std::string();
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find(';', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        std::size_t eq = item.find('=');
        if (eq == std::string::npos) throw InvalidInputError("malformed PRVCFG item '" + item + "'");
        p.config[item.substr(0, eq)] = item.substr(eq + 1);
        pos = end + 1;
    }
    const std::int64_t n = md.has("PRVNIN") ? md.getInt("PRVNIN") : 0;
    for (std::int64_t i = 1; i <= n; ++i) {
        const std::string key = "PRVIN" + std::to_string(i);
        if (!md.has(key)) throw InvalidInputError("provenance input " + key + " missing");
        const std::string v = md.getString(key);
        std::size_t a = v.find(' '), b = a == std::string::npos ? a : v.find(' ', a + 1), c = v.rfind(' ');
        if (a == std::string::npos || b == std::string::npos || c == std::string::npos || c < b)
            throw InvalidInputError("malformed provenance input " + key + " = '" + v + "'");
        p.inputs.push_back({v.substr(0, a), v.substr(a + 1, b - a - 1), v.substr(b + 1, c - b - 1), v.substr(c + 1)});
    }
    return p;
}

}  // namespace drp
