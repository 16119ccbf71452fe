// DataId: the dimensions that name a dataset or a quantum, e.g. {visit: 12, detector: 3}.
// The dimensions and their order are fixed:
//   instrument, band, physical_filter, day_obs, visit, detector, tract, patch, skymap, htm
// instrument, band, physical_filter and skymap take string values; day_obs, visit, detector, tract,
// patch and htm take integers (setting the wrong kind throws LogicError). htm is the id of a
// Hierarchical Triangular Mesh trixel (sky/HtmPixelization.h): one shard of the reference catalog.
// Canonical string form (logs, errors, manifests): present dimensions in the order above,
// "name=value" separated by single spaces, e.g. "band=r visit=12 detector=3". A string value is
// written bare when it consists only of [A-Za-z0-9_.:,+-] and is not empty; otherwise it is
// double-quoted with \" and \\ escapes. parse(toString()) == *this for every DataId.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace drp {

enum class Dimension : std::uint8_t {
    Instrument = 0,
    Band,
    PhysicalFilter,
    DayObs,
    Visit,
    Detector,
    Tract,
    Patch,
    Skymap,
    Htm
};
inline constexpr std::size_t kDimensionCount = 10;

/// "instrument", "band", "physical_filter", "day_obs", "visit", "detector", "tract", "patch", "skymap",
/// "htm".
const char* dimensionName(Dimension d);
/// Inverse of dimensionName; throws InvalidInputError for an unknown name.
Dimension dimensionFromName(std::string_view name);
/// True for the string-valued dimensions (instrument, band, physical_filter, skymap).
bool dimensionIsString(Dimension d);
/// All dimensions in canonical order.
const std::array<Dimension, kDimensionCount>& allDimensions();

class DataId {
public:
    using Value = std::variant<std::int64_t, std::string>;

    DataId() = default;
    /// DataId{{"visit", 12}, {"detector", 3}, {"band", "r"}}; throws on unknown names or wrong kinds.
    DataId(std::initializer_list<std::pair<std::string_view, Value>> items);

    /// Parse the canonical form (any order of dimensions, any amount of whitespace between items).
    /// Throws InvalidInputError on syntax errors, unknown dimensions, repeated dimensions or a value
    /// of the wrong kind. "" parses to the empty DataId.
    static DataId parse(std::string_view text);

    DataId& set(Dimension d, std::int64_t value);
    DataId& set(Dimension d, std::string value);
    DataId& set(Dimension d, const char* value) { return set(d, std::string(value)); }
    DataId& set(Dimension d, int value) { return set(d, std::int64_t(value)); }
    DataId& set(Dimension d, const Value& value);
    DataId& set(std::string_view name, const Value& value) { return set(dimensionFromName(name), value); }
    DataId& erase(Dimension d);

    bool has(Dimension d) const { return values_[index(d)].has_value(); }
    /// Throws NotFoundError if absent.
    const Value& get(Dimension d) const;
    /// Typed reads; NotFoundError if absent.
    std::int64_t getInt(Dimension d) const;
    const std::string& getString(Dimension d) const;
    /// The value as it appears in the canonical form (quoted if needed); NotFoundError if absent.
    std::string valueString(Dimension d) const;

    std::size_t size() const;
    bool empty() const { return size() == 0; }
    /// The present dimensions in canonical order.
    std::vector<Dimension> dimensions() const;

    /// Only the given dimensions (those absent here stay absent).
    DataId subset(const std::vector<Dimension>& dims) const;
    /// True if every dimension of `other` is present here with the same value (so the empty DataId
    /// matches everything): the test used for partial-data-ID queries.
    bool matches(const DataId& other) const;

    std::string toString() const;
    std::size_t hash() const;

    friend bool operator==(const DataId& a, const DataId& b) { return a.values_ == b.values_; }
    /// Dimension by dimension in canonical order; an absent dimension sorts before a present one.
    friend std::strong_ordering operator<=>(const DataId& a, const DataId& b);

private:
    static std::size_t index(Dimension d) { return static_cast<std::size_t>(d); }
    std::array<std::optional<Value>, kDimensionCount> values_{};
};

}  // namespace drp

template <>
struct std::hash<drp::DataId> {
    std::size_t operator()(const drp::DataId& id) const noexcept { return id.hash(); }
};
