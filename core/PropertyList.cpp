#include "core/PropertyList.h"

#include <algorithm>
#include <cstdio>

#include "core/Error.h"

namespace drp {

const PropertyList::Entry* PropertyList::find(const std::string& key) const {
    for (const auto& e : entries_)
        if (e.key == key) return &e;
    return nullptr;
}

void PropertyList::set(const std::string& key, Value value, const std::string& comment) {
    for (auto& e : entries_) {
        if (e.key == key) {
            e.value = std::move(value);
            if (!comment.empty()) e.comment = comment;
            return;
        }
    }
    entries_.push_back({key, std::move(value), comment});
}

void PropertyList::remove(const std::string& key) {
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; }),
                   entries_.end());
}

const PropertyList::Value& PropertyList::get(const std::string& key) const {
    const Entry* e = find(key);
    if (!e) throw NotFoundError("no metadata key '" + key + "'");
    return e->value;
}

const std::string& PropertyList::comment(const std::string& key) const {
    const Entry* e = find(key);
    if (!e) throw NotFoundError("no metadata key '" + key + "'");
    return e->comment;
}

double PropertyList::getDouble(const std::string& key) const {
    const Value& v = get(key);
    if (auto d = std::get_if<double>(&v)) return *d;
    if (auto i = std::get_if<std::int64_t>(&v)) return double(*i);
    throw LogicError("metadata key '" + key + "' is not a number");
}

std::int64_t PropertyList::getInt(const std::string& key) const {
    const Value& v = get(key);
    if (auto i = std::get_if<std::int64_t>(&v)) return *i;
    throw LogicError("metadata key '" + key + "' is not an integer");
}

bool PropertyList::getBool(const std::string& key) const {
    const Value& v = get(key);
    if (auto b = std::get_if<bool>(&v)) return *b;
    throw LogicError("metadata key '" + key + "' is not a boolean");
}

std::string PropertyList::getString(const std::string& key) const {
    const Value& v = get(key);
    if (auto s = std::get_if<std::string>(&v)) return *s;
    throw LogicError("metadata key '" + key + "' is not a string");
}

std::vector<std::string> PropertyList::keys() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_) out.push_back(e.key);
    return out;
}

void PropertyList::merge(const PropertyList& other) {
    for (const auto& e : other.entries_) set(e.key, e.value, e.comment);
}

std::string PropertyList::format(const Value& v) {
    struct Visitor {
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(std::int64_t i) const { return std::to_string(i); }
        std::string operator()(double d) const {
            char buf[40];
            std::snprintf(buf, sizeof buf, "%.17g", d);
            return buf;
        }
        std::string operator()(const std::string& s) const { return "'" + s + "'"; }
    };
    return std::visit(Visitor{}, v);
}

}  // namespace drp
