#include "core/Schema.h"

#include "core/Error.h"

namespace drp {

const char* fieldTypeName(FieldType type) {
    switch (type) {
        case FieldType::Int32: return "int32";
        case FieldType::Int64: return "int64";
        case FieldType::Float32: return "float32";
        case FieldType::Float64: return "float64";
        case FieldType::Flag: return "flag";
        case FieldType::String: return "string";
    }
    return "unknown";
}

std::size_t Schema::addField(const FieldInfo& info) {
    if (info.name.empty()) throw LogicError("Schema::addField: empty column name");
    if (info.name.find('/') != std::string::npos || info.name == "." || info.name == "..")
        throw LogicError("Schema::addField: column name '" + info.name + "' may not contain '/'");
    if (static_cast<int>(info.type) > static_cast<int>(FieldType::String))
        throw LogicError("Schema::addField: bad field type for '" + info.name + "'");
    if (contains(info.name)) throw LogicError("Schema::addField: duplicate column name '" + info.name + "'");
    fields_.push_back(info);
    return fields_.size() - 1;
}

std::optional<std::size_t> Schema::tryIndexOf(const std::string& name) const {
    for (std::size_t i = 0; i < fields_.size(); ++i)
        if (fields_[i].name == name) return i;
    return std::nullopt;
}

std::size_t Schema::indexOf(const std::string& name) const {
    auto i = tryIndexOf(name);
    if (!i) throw NotFoundError("Schema: no column named '" + name + "'");
    return *i;
}

const FieldInfo& Schema::field(std::size_t index) const {
    if (index >= fields_.size())
        throw LogicError("Schema: field index " + std::to_string(index) + " out of range (" +
                         std::to_string(fields_.size()) + " fields)");
    return fields_[index];
}

std::vector<std::string> Schema::names() const {
    std::vector<std::string> out;
    out.reserve(fields_.size());
    for (const auto& f : fields_) out.push_back(f.name);
    return out;
}

std::string Schema::signature() const {
    std::string s;
    for (const auto& f : fields_) {
        s += f.name;
        s += ':';
        s += fieldTypeName(f.type);
        s += '[';
        s += f.unit;
        s += "];";
    }
    return s;
}

void Schema::requireType(std::size_t index, FieldType expected) const {
    const FieldInfo& f = field(index);
    if (f.type != expected)
        throw LogicError("Schema: column '" + f.name + "' has type " + fieldTypeName(f.type) + ", not " +
                         fieldTypeName(expected));
}

}  // namespace drp
