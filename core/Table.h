// Table: a columnar catalog over a Schema. Every column is one contiguous std::vector of its
// element type (see Schema.h), all of the same length (the row count). Columns are accessed as
// spans by typed key (fast, checked only against the schema it was made from) or by name.
// Table-level metadata (provenance, units system, ...) lives in a PropertyList.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/PropertyList.h"
#include "core/Schema.h"

namespace drp {

class Table {
public:
    /// One column's storage; the alternative index equals static_cast<int>(FieldType).
    using Column = std::variant<std::vector<std::int32_t>, std::vector<std::int64_t>, std::vector<float>,
                                std::vector<double>, std::vector<std::uint8_t>, std::vector<std::string>>;

    /// A table with `rows` rows of zero values (empty strings, false flags).
    explicit Table(Schema schema, std::size_t rows = 0);
    explicit Table(std::shared_ptr<const Schema> schema, std::size_t rows = 0);

    const Schema& schema() const { return *schema_; }
    const std::shared_ptr<const Schema>& schemaPtr() const { return schema_; }

    std::size_t size() const { return rows_; }
    bool empty() const { return rows_ == 0; }

    /// A new column of zero values (false flags) after the existing ones: the schema is copied with the field
    /// added (tables sharing the old schema keep it). Throws LogicError if the name is taken.
    template <typename T>
    Key<T> addColumn(const std::string& name, const std::string& doc, const std::string& unit = {}) {
        addColumn(FieldInfo{name, FieldTraits<T>::type, unit, doc});
        return schema_->find<T>(name);
    }
    std::size_t addColumn(const FieldInfo& info);

    /// Append one zero-valued row; returns its index.
    std::size_t addRow();
    void resize(std::size_t rows);
    void reserve(std::size_t rows);

    /// The column of `key` as a span (valid until the next resize/addRow/append).
    template <typename T>
    std::span<typename Key<T>::Element> column(Key<T> key) {
        return std::get<std::vector<typename Key<T>::Element>>(columnAt(key.index(), FieldTraits<T>::type));
    }
    template <typename T>
    std::span<const typename Key<T>::Element> column(Key<T> key) const {
        return std::get<std::vector<typename Key<T>::Element>>(columnAt(key.index(), FieldTraits<T>::type));
    }
    /// By name; throws NotFoundError if absent, LogicError if the column's type is not T.
    template <typename T>
    std::span<typename Key<T>::Element> column(const std::string& name) {
        return column(schema_->find<T>(name));
    }
    template <typename T>
    std::span<const typename Key<T>::Element> column(const std::string& name) const {
        return column(schema_->find<T>(name));
    }

    /// One element, bounds-checked (LogicError).
    template <typename T>
    typename Key<T>::Element& at(Key<T> key, std::size_t row) {
        checkRow(row);
        return column(key)[row];
    }
    template <typename T>
    const typename Key<T>::Element& at(Key<T> key, std::size_t row) const {
        checkRow(row);
        return column(key)[row];
    }

    /// Untyped column storage (for I/O); index is the schema field index.
    const Column& columnData(std::size_t index) const;
    Column& columnData(std::size_t index);

    /// Append the rows of `other`; its schema must equal this one (LogicError otherwise).
    /// Metadata of `other` is not merged.
    void append(const Table& other);
    /// The rows of all tables in order; every schema must equal the first's. Metadata is the first's.
    /// Throws LogicError on an empty list.
    static Table concatenate(const std::vector<Table>& tables);
    /// Rows [begin, begin+count) as a new table (same schema and metadata).
    Table slice(std::size_t begin, std::size_t count) const;

    PropertyList& metadata() { return metadata_; }
    const PropertyList& metadata() const { return metadata_; }

    /// Bit-exact equality of schema, row count, every column's bytes (so NaN payloads compare) and
    /// metadata.
    bool identical(const Table& other) const;

private:
    Column& columnAt(std::size_t index, FieldType expected);
    const Column& columnAt(std::size_t index, FieldType expected) const;
    void checkRow(std::size_t row) const;

    std::shared_ptr<const Schema> schema_;
    std::vector<Column> columns_;
    std::size_t rows_ = 0;
    PropertyList metadata_;
};

}  // namespace drp
