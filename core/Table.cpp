#include "core/Table.h"

#include <cstring>

#include "core/Error.h"

namespace drp {

namespace {

Table::Column makeColumn(FieldType type, std::size_t rows) {
    switch (type) {
        case FieldType::Int32: return std::vector<std::int32_t>(rows);
        case FieldType::Int64: return std::vector<std::int64_t>(rows);
        case FieldType::Float32: return std::vector<float>(rows);
        case FieldType::Float64: return std::vector<double>(rows);
        case FieldType::Flag: return std::vector<std::uint8_t>(rows);
        case FieldType::String: return std::vector<std::string>(rows);
    }
    throw LogicError("Table: bad field type");
}

}  // namespace

Table::Table(Schema schema, std::size_t rows) : Table(std::make_shared<const Schema>(std::move(schema)), rows) {}

Table::Table(std::shared_ptr<const Schema> schema, std::size_t rows) : schema_(std::move(schema)), rows_(rows) {
    if (!schema_) throw LogicError("Table: null schema");
    columns_.reserve(schema_->size());
    for (const auto& f : schema_->fields()) columns_.push_back(makeColumn(f.type, rows));
}

std::size_t Table::addRow() {
    for (auto& c : columns_) std::visit([](auto& v) { v.emplace_back(); }, c);
    return rows_++;
}

void Table::resize(std::size_t rows) {
    for (auto& c : columns_) std::visit([rows](auto& v) { v.resize(rows); }, c);
    rows_ = rows;
}

void Table::reserve(std::size_t rows) {
    for (auto& c : columns_) std::visit([rows](auto& v) { v.reserve(rows); }, c);
}

Table::Column& Table::columnAt(std::size_t index, FieldType expected) {
    return const_cast<Column&>(static_cast<const Table*>(this)->columnAt(index, expected));
}

const Table::Column& Table::columnAt(std::size_t index, FieldType expected) const {
    if (index >= columns_.size())
        throw LogicError("Table: key index " + std::to_string(index) + " is not in this table's schema (" +
                         std::to_string(columns_.size()) + " columns)");
    const Column& c = columns_[index];
    if (c.index() != static_cast<std::size_t>(expected))
        throw LogicError("Table: column '" + schema_->field(index).name + "' has type " +
                         fieldTypeName(schema_->field(index).type) + ", not " + fieldTypeName(expected));
    return c;
}

const Table::Column& Table::columnData(std::size_t index) const {
    return columnAt(index, schema_->field(index).type);
}

Table::Column& Table::columnData(std::size_t index) { return columnAt(index, schema_->field(index).type); }

void Table::checkRow(std::size_t row) const {
    if (row >= rows_)
        throw LogicError("Table: row " + std::to_string(row) + " out of range (" + std::to_string(rows_) + " rows)");
}

std::size_t Table::addColumn(const FieldInfo& info) {
    Schema schema = *schema_;
    const std::size_t index = schema.addField(info);
    schema_ = std::make_shared<const Schema>(std::move(schema));
    columns_.push_back(makeColumn(info.type, rows_));
    return index;
}

void Table::append(const Table& other) {
    if (!(schema() == other.schema()))
        throw LogicError("Table::append: schemas differ (" + schema().signature() + " vs " +
                         other.schema().signature() + ")");
    if (&other == this) {
        Table copy = other;
        append(copy);
        return;
    }
    for (std::size_t i = 0; i < columns_.size(); ++i) {
        std::visit(
            [&](auto& dst) {
                using V = std::decay_t<decltype(dst)>;
                const auto& src = std::get<V>(other.columns_[i]);
                dst.insert(dst.end(), src.begin(), src.end());
            },
            columns_[i]);
    }
    rows_ += other.rows_;
}

Table Table::concatenate(const std::vector<Table>& tables) {
    if (tables.empty()) throw LogicError("Table::concatenate: no tables");
    std::size_t total = 0;
    for (const auto& t : tables) total += t.size();
    Table out(tables.front().schemaPtr());
    out.metadata_ = tables.front().metadata_;
    out.reserve(total);
    for (const auto& t : tables) out.append(t);
    return out;
}

Table Table::slice(std::size_t begin, std::size_t count) const {
    if (begin > rows_ || count > rows_ - begin)
        throw LogicError("Table::slice: rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                         ") out of range (" + std::to_string(rows_) + " rows)");
    Table out(schema_);
    out.metadata_ = metadata_;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
        std::visit(
            [&](const auto& src) {
                using V = std::decay_t<decltype(src)>;
                std::get<V>(out.columns_[i]).assign(src.begin() + std::ptrdiff_t(begin),
                                                    src.begin() + std::ptrdiff_t(begin + count));
            },
            columns_[i]);
    }
    out.rows_ = count;
    return out;
}

bool Table::identical(const Table& other) const {
    if (!(schema() == other.schema()) || rows_ != other.rows_ || !(metadata_ == other.metadata_)) return false;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
        bool same = std::visit(
            [&](const auto& a) {
                using V = std::decay_t<decltype(a)>;
                const auto& b = std::get<V>(other.columns_[i]);
                if constexpr (std::is_same_v<V, std::vector<std::string>>) {
                    return a == b;
                } else {
                    return a.size() == b.size() &&
                           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0);
                }
            },
            columns_[i]);
        if (!same) return false;
    }
    return true;
}

}  // namespace drp
