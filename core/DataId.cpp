#include "core/DataId.h"

#include <charconv>

#include "core/Error.h"

namespace drp {

namespace {

constexpr std::array<const char*, kDimensionCount> kNames = {
    "instrument", "band", "physical_filter", "day_obs", "visit", "detector", "tract", "patch", "skymap", "htm"};

bool isBareChar(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == ',' || c == '+' || c == '-';
}

std::string quoteIfNeeded(const std::string& s) {
    bool bare = !s.empty();
    for (char c : s) bare = bare && isBareChar(c);
    if (bare) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    // boost::hash_combine-like mixing on 64 bits
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 12) + (h >> 4);
    return h;
}

}  // namespace

const char* dimensionName(Dimension d) {
    auto i = static_cast<std::size_t>(d);
    if (i >= kDimensionCount) return "unknown";
    return kNames[i];
}

Dimension dimensionFromName(std::string_view name) {
    for (std::size_t i = 0; i < kDimensionCount; ++i)
        if (name == kNames[i]) return static_cast<Dimension>(i);
    throw InvalidInputError("unknown data ID dimension '" + std::string(name) +
                            "' (known: instrument band physical_filter day_obs visit detector tract patch skymap htm)");
}

bool dimensionIsString(Dimension d) {
    return d == Dimension::Instrument || d == Dimension::Band || d == Dimension::PhysicalFilter ||
           d == Dimension::Skymap;
}

const std::array<Dimension, kDimensionCount>& allDimensions() {
    static const std::array<Dimension, kDimensionCount> all = {
        Dimension::Instrument, Dimension::Band,  Dimension::PhysicalFilter, Dimension::DayObs, Dimension::Visit,
        Dimension::Detector,   Dimension::Tract, Dimension::Patch,          Dimension::Skymap, Dimension::Htm};
    return all;
}

DataId::DataId(std::initializer_list<std::pair<std::string_view, Value>> items) {
    for (const auto& [name, value] : items) set(dimensionFromName(name), value);
}

DataId& DataId::set(Dimension d, std::int64_t value) {
    if (index(d) >= kDimensionCount) throw LogicError("DataId: bad dimension");
    if (dimensionIsString(d))
        throw LogicError(std::string("DataId: dimension '") + dimensionName(d) + "' takes a string, not " +
                         std::to_string(value));
    values_[index(d)] = Value(value);
    return *this;
}

DataId& DataId::set(Dimension d, std::string value) {
    if (index(d) >= kDimensionCount) throw LogicError("DataId: bad dimension");
    if (!dimensionIsString(d))
        throw LogicError(std::string("DataId: dimension '") + dimensionName(d) + "' takes an integer, not '" +
                         value + "'");
    values_[index(d)] = Value(std::move(value));
    return *this;
}

DataId& DataId::set(Dimension d, const Value& value) {
    if (std::holds_alternative<std::int64_t>(value)) return set(d, std::get<std::int64_t>(value));
    return set(d, std::get<std::string>(value));
}

DataId& DataId::erase(Dimension d) {
    if (index(d) < kDimensionCount) values_[index(d)].reset();
    return *this;
}

const DataId::Value& DataId::get(Dimension d) const {
    if (index(d) >= kDimensionCount || !values_[index(d)])
        throw NotFoundError(std::string("DataId has no '") + dimensionName(d) + "'", {}, toString());
    return *values_[index(d)];
}

std::int64_t DataId::getInt(Dimension d) const { return std::get<std::int64_t>(get(d)); }

const std::string& DataId::getString(Dimension d) const { return std::get<std::string>(get(d)); }

std::string DataId::valueString(Dimension d) const {
    const Value& v = get(d);
    if (std::holds_alternative<std::int64_t>(v)) return std::to_string(std::get<std::int64_t>(v));
    return quoteIfNeeded(std::get<std::string>(v));
}

std::size_t DataId::size() const {
    std::size_t n = 0;
    for (const auto& v : values_) n += v.has_value();
    return n;
}

std::vector<Dimension> DataId::dimensions() const {
    std::vector<Dimension> out;
    for (std::size_t i = 0; i < kDimensionCount; ++i)
        if (values_[i]) out.push_back(static_cast<Dimension>(i));
    return out;
}

DataId DataId::subset(const std::vector<Dimension>& dims) const {
    DataId out;
    for (Dimension d : dims)
        if (index(d) < kDimensionCount) out.values_[index(d)] = values_[index(d)];
    return out;
}

bool DataId::matches(const DataId& other) const {
    for (std::size_t i = 0; i < kDimensionCount; ++i)
        if (other.values_[i] && values_[i] != other.values_[i]) return false;
    return true;
}

std::string DataId::toString() const {
    std::string out;
    for (std::size_t i = 0; i < kDimensionCount; ++i) {
        if (!values_[i]) continue;
        if (!out.empty()) out += ' ';
        out += kNames[i];
        out += '=';
        out += valueString(static_cast<Dimension>(i));
    }
    return out;
}

std::size_t DataId::hash() const {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < kDimensionCount; ++i) {
        if (!values_[i]) continue;
        h = mix(h, i + 1);
        if (std::holds_alternative<std::int64_t>(*values_[i]))
            h = mix(h, static_cast<std::uint64_t>(std::get<std::int64_t>(*values_[i])));
        else
            h = mix(h, std::hash<std::string>{}(std::get<std::string>(*values_[i])));
    }
    return static_cast<std::size_t>(h);
}

std::strong_ordering operator<=>(const DataId& a, const DataId& b) {
    for (std::size_t i = 0; i < kDimensionCount; ++i) {
        const auto& x = a.values_[i];
        const auto& y = b.values_[i];
        if (x.has_value() != y.has_value()) return x.has_value() ? std::strong_ordering::greater
                                                                  : std::strong_ordering::less;
        if (!x) continue;
        if (std::holds_alternative<std::int64_t>(*x)) {
            auto c = std::get<std::int64_t>(*x) <=> std::get<std::int64_t>(*y);
            if (c != 0) return c;
        } else {
            int c = std::get<std::string>(*x).compare(std::get<std::string>(*y));
            if (c != 0) return c < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
        }
    }
    return std::strong_ordering::equal;
}

DataId DataId::parse(std::string_view text) {
    DataId out;
    const std::string full(text);
    auto fail = [&](const std::string& why) -> void {
        throw InvalidInputError("cannot parse data ID '" + full + "': " + why);
    };
    std::size_t i = 0;
    auto skipSpace = [&] {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    };
    skipSpace();
    while (i < text.size()) {
        std::size_t eq = text.find('=', i);
        if (eq == std::string_view::npos) fail("expected name=value at offset " + std::to_string(i));
        std::string_view name = text.substr(i, eq - i);
        for (char c : name)
            if (!isBareChar(c)) fail("bad dimension name '" + std::string(name) + "'");
        Dimension d{};
        try {
            d = dimensionFromName(name);
        } catch (const InvalidInputError& e) {
            fail(e.message());
        }
        if (out.has(d)) fail("dimension '" + std::string(name) + "' given twice");
        i = eq + 1;
        std::string value;
        bool quoted = false;
        if (i < text.size() && text[i] == '"') {
            quoted = true;
            ++i;
            bool closed = false;
            while (i < text.size()) {
                char c = text[i++];
                if (c == '\\') {
                    if (i >= text.size()) break;
                    value += text[i++];
                } else if (c == '"') {
                    closed = true;
                    break;
                } else {
                    value += c;
                }
            }
            if (!closed) fail("unterminated quoted value");
            if (i < text.size() && !(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
                fail("expected whitespace after quoted value");
        } else {
            while (i < text.size() && isBareChar(text[i])) value += text[i++];
            if (i < text.size() && !(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
                fail(std::string("unexpected character '") + text[i] + "'");
            if (value.empty()) fail("empty value for '" + std::string(name) + "'");
        }
        if (dimensionIsString(d)) {
            out.values_[index(d)] = Value(std::move(value));
        } else {
            if (quoted) fail("dimension '" + std::string(name) + "' takes an integer");
            std::int64_t v = 0;
            const char* b = value.data();
            const char* e = value.data() + value.size();
            if (*b == '+') ++b;
            auto [p, ec] = std::from_chars(b, e, v);
            if (ec != std::errc() || p != e)
                fail("dimension '" + std::string(name) + "' takes an integer, got '" + value + "'");
            out.values_[index(d)] = Value(v);
        }
        skipSpace();
    }
    return out;
}

}  // namespace drp
