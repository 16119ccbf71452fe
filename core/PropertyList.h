// PropertyList: an ordered list of named scalar values with comments (FITS header cards,
// visit metadata, provenance). Keys are unique; setting an existing key replaces it in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace drp {

class PropertyList {
public:
    using Value = std::variant<bool, std::int64_t, double, std::string>;
    struct Entry {
        std::string key;
        Value value;
        std::string comment;
        friend bool operator==(const Entry&, const Entry&) = default;
    };

    void set(const std::string& key, Value value, const std::string& comment = {});
    /// Any arithmetic or string-like value: bool stays bool, integers become int64, floats double.
    template <typename T>
        requires(!std::is_same_v<std::decay_t<T>, Value>)
    void set(const std::string& key, T&& value, const std::string& comment = {}) {
        using D = std::decay_t<T>;
        if constexpr (std::is_same_v<D, bool>)
            set(key, Value(bool(value)), comment);
        else if constexpr (std::is_integral_v<D>)
            set(key, Value(std::int64_t(value)), comment);
        else if constexpr (std::is_floating_point_v<D>)
            set(key, Value(double(value)), comment);
        else
            set(key, Value(std::string(std::forward<T>(value))), comment);
    }
    bool has(const std::string& key) const { return find(key) != nullptr; }
    void remove(const std::string& key);

    /// Typed read; throws NotFoundError if absent, LogicError if the type does not convert.
    /// Integers convert to double; nothing else converts.
    double getDouble(const std::string& key) const;
    std::int64_t getInt(const std::string& key) const;
    bool getBool(const std::string& key) const;
    std::string getString(const std::string& key) const;
    double getDouble(const std::string& key, double fallback) const { return has(key) ? getDouble(key) : fallback; }
    std::int64_t getInt(const std::string& key, std::int64_t fallback) const { return has(key) ? getInt(key) : fallback; }
    std::string getString(const std::string& key, const std::string& fallback) const {
        return has(key) ? getString(key) : fallback;
    }
    const Value& get(const std::string& key) const;
    const std::string& comment(const std::string& key) const;

    const std::vector<Entry>& entries() const { return entries_; }
    std::vector<std::string> keys() const;
    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    /// Append or replace every entry of `other`.
    void merge(const PropertyList& other);

    /// The value as text (for logs and provenance): numbers with full precision, strings quoted.
    static std::string format(const Value& v);

    friend bool operator==(const PropertyList&, const PropertyList&) = default;

private:
    const Entry* find(const std::string& key) const;
    std::vector<Entry> entries_;
};

}  // namespace drp
