// Schema: the ordered list of columns of a catalog (name, type, unit, doc). A stage registers its
// own columns when it is constructed and keeps the typed Key<T> it gets back; a key is an index
// that never changes once the field is added, so it stays valid for every Table made from this
// schema (or from a schema that extends it). Names are unique.
//
// Column element types (FieldType -> C++ key type -> element stored in a Table column):
//   Int32   -> Key<std::int32_t> -> std::int32_t
//   Int64   -> Key<std::int64_t> -> std::int64_t
//   Float32 -> Key<float>        -> float
//   Float64 -> Key<double>       -> double
//   Flag    -> Key<bool>         -> std::uint8_t (0 or 1; a byte, so a column is a contiguous span)
//   String  -> Key<std::string>  -> std::string (UTF-8, no NUL characters)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace drp {

enum class FieldType : std::uint8_t { Int32 = 0, Int64 = 1, Float32 = 2, Float64 = 3, Flag = 4, String = 5 };

/// "int32", "int64", "float32", "float64", "flag", "string".
const char* fieldTypeName(FieldType type);

/// Maps a key type to its FieldType and to the element type stored in a Table column.
template <typename T>
struct FieldTraits;
template <>
struct FieldTraits<std::int32_t> {
    static constexpr FieldType type = FieldType::Int32;
    using Element = std::int32_t;
};
template <>
struct FieldTraits<std::int64_t> {
    static constexpr FieldType type = FieldType::Int64;
    using Element = std::int64_t;
};
template <>
struct FieldTraits<float> {
    static constexpr FieldType type = FieldType::Float32;
    using Element = float;
};
template <>
struct FieldTraits<double> {
    static constexpr FieldType type = FieldType::Float64;
    using Element = double;
};
template <>
struct FieldTraits<bool> {
    static constexpr FieldType type = FieldType::Flag;
    using Element = std::uint8_t;
};
template <>
struct FieldTraits<std::string> {
    static constexpr FieldType type = FieldType::String;
    using Element = std::string;
};

/// Description of one column.
struct FieldInfo {
    std::string name;
    FieldType type = FieldType::Float64;
    std::string unit;  ///< e.g. "nJy", "deg", "pixel"; empty for dimensionless
    std::string doc;   ///< one-line description
    friend bool operator==(const FieldInfo&, const FieldInfo&) = default;
};

/// A typed handle on a column: the field's index in its schema. Default-constructed keys are invalid.
template <typename T>
class Key {
public:
    using Element = typename FieldTraits<T>::Element;
    static constexpr std::size_t invalid = static_cast<std::size_t>(-1);

    Key() = default;
    std::size_t index() const { return index_; }
    bool isValid() const { return index_ != invalid; }
    friend bool operator==(const Key&, const Key&) = default;

private:
    friend class Schema;
    explicit Key(std::size_t index) : index_(index) {}
    std::size_t index_ = invalid;
};

class Schema {
public:
    Schema() = default;

    /// Add a column; throws LogicError if `name` is empty or already used. The returned key's index
    /// is the number of fields before this one and never changes.
    template <typename T>
    Key<T> addField(const std::string& name, const std::string& doc, const std::string& unit = {}) {
        return Key<T>(addField(FieldInfo{name, FieldTraits<T>::type, unit, doc}));
    }
    /// Untyped form (used when a schema is reconstructed from a file); returns the field index.
    std::size_t addField(const FieldInfo& info);

    /// The key of column `name`; throws NotFoundError if absent, LogicError if its type is not T.
    template <typename T>
    Key<T> find(const std::string& name) const {
        std::size_t i = indexOf(name);
        requireType(i, FieldTraits<T>::type);
        return Key<T>(i);
    }
    /// Index of column `name`; throws NotFoundError if absent.
    std::size_t indexOf(const std::string& name) const;
    std::optional<std::size_t> tryIndexOf(const std::string& name) const;
    bool contains(const std::string& name) const { return tryIndexOf(name).has_value(); }

    const FieldInfo& field(std::size_t index) const;
    template <typename T>
    const FieldInfo& field(Key<T> key) const {
        return field(key.index());
    }
    const std::vector<FieldInfo>& fields() const { return fields_; }
    std::size_t size() const { return fields_.size(); }
    bool empty() const { return fields_.empty(); }
    std::vector<std::string> names() const;

    /// A one-line text form "name:type[unit];..." (for logs and for cross-rank schema checks).
    std::string signature() const;

    friend bool operator==(const Schema& a, const Schema& b) { return a.fields_ == b.fields_; }

private:
    void requireType(std::size_t index, FieldType expected) const;
    std::vector<FieldInfo> fields_;
};

}  // namespace drp
