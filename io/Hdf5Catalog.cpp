#include "io/Hdf5Catalog.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/Error.h"
#include "core/MpiNative.h"
#include "io/AtomicFile.h"

namespace drp {

namespace {

constexpr const char* kCommentPrefix = "comment:";
constexpr std::size_t kMaxChunkBytes = std::size_t(4) << 20;

// ---- datatypes -------------------------------------------------------------------------------

Hdf5Id copyType(hid_t predefined, const std::filesystem::path& file) {
    return Hdf5Id(checkHdf5(H5Tcopy(predefined), "H5Tcopy", file));
}

Hdf5Id boolType(const std::filesystem::path& file) {
    Hdf5Id t(checkHdf5(H5Tenum_create(H5T_NATIVE_SCHAR), "H5Tenum_create", file));
    signed char f = 0, tr = 1;
    if (H5Tenum_insert(t.get(), "FALSE", &f) < 0 || H5Tenum_insert(t.get(), "TRUE", &tr) < 0)
        throwHdf5Error("H5Tenum_insert", file);
    return t;
}

Hdf5Id stringType(std::size_t width, const std::filesystem::path& file) {
    Hdf5Id t = copyType(H5T_C_S1, file);
    if (H5Tset_size(t.get(), std::max<std::size_t>(width, 1)) < 0 || H5Tset_strpad(t.get(), H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t.get(), H5T_CSET_UTF8) < 0)
        throwHdf5Error("cannot make a string type", file);
    return t;
}

/// File type and memory type of a column.
std::pair<Hdf5Id, Hdf5Id> columnTypes(FieldType type, std::size_t strWidth, const std::filesystem::path& file) {
    switch (type) {
        case FieldType::Int32: return {copyType(H5T_STD_I32LE, file), copyType(H5T_NATIVE_INT32, file)};
        case FieldType::Int64: return {copyType(H5T_STD_I64LE, file), copyType(H5T_NATIVE_INT64, file)};
        case FieldType::Float32: return {copyType(H5T_IEEE_F32LE, file), copyType(H5T_NATIVE_FLOAT, file)};
        case FieldType::Float64: return {copyType(H5T_IEEE_F64LE, file), copyType(H5T_NATIVE_DOUBLE, file)};
        case FieldType::Flag: return {boolType(file), boolType(file)};
        case FieldType::String: return {stringType(strWidth, file), stringType(strWidth, file)};
    }
    throw LogicError("Hdf5Catalog: bad field type", file.string());
}

std::size_t maxStringLength(const std::vector<std::string>& v, const std::string& column,
                            const std::filesystem::path& file) {
    std::size_t w = 0;
    for (const auto& s : v) {
        if (s.find('\0') != std::string::npos)
            throw LogicError("Hdf5Catalog: string column '" + column + "' holds a NUL character", file.string());
        w = std::max(w, s.size());
    }
    return w;
}

std::vector<char> packStrings(const std::vector<std::string>& v, std::size_t width) {
    std::vector<char> buf(std::max<std::size_t>(v.size() * width, 1), '\0');
    for (std::size_t i = 0; i < v.size(); ++i) std::memcpy(buf.data() + i * width, v[i].data(), v[i].size());
    return buf;
}

/// Dataset access properties without a chunk cache: whole columns are written and read in one
/// call, chunks are never revisited, so caching would only add a copy of every byte.
Hdf5Id uncachedAccess(const std::filesystem::path& file, const std::string& object) {
    Hdf5Id dapl(checkHdf5(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate(dataset access)", file, object));
    if (H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0) < 0) throwHdf5Error("H5Pset_chunk_cache", file, object);
    return dapl;
}

// ---- attributes ------------------------------------------------------------------------------

void writeAttribute(hid_t obj, const std::string& name, hid_t type, const void* data,
                    const std::filesystem::path& file, const std::string& object) {
    Hdf5Id space(checkHdf5(H5Screate(H5S_SCALAR), "H5Screate", file, object));
    Hdf5Id attr(checkHdf5(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                          "cannot create attribute '" + name + "'", file, object));
    if (H5Awrite(attr.get(), type, data) < 0) throwHdf5Error("cannot write attribute '" + name + "'", file, object);
}

void writeStringAttribute(hid_t obj, const std::string& name, const std::string& value,
                          const std::filesystem::path& file, const std::string& object) {
    if (value.find('\0') != std::string::npos)
        throw LogicError("Hdf5Catalog: attribute '" + name + "' of '" + object + "' holds a NUL character",
                         file.string());
    Hdf5Id t = stringType(value.size(), file);
    std::vector<char> buf(std::max<std::size_t>(value.size(), 1), '\0');
    std::memcpy(buf.data(), value.data(), value.size());
    writeAttribute(obj, name, t.get(), buf.data(), file, object);
}

void writeMetadata(hid_t group, const PropertyList& md, const std::filesystem::path& file,
                   const std::string& object) {
    for (const auto& e : md.entries()) {
        if (e.key.rfind(kCommentPrefix, 0) == 0)
            throw LogicError("Hdf5Catalog: metadata key '" + e.key + "' uses the reserved prefix 'comment:'",
                             file.string());
        if (const bool* b = std::get_if<bool>(&e.value)) {
            Hdf5Id t = boolType(file);
            signed char v = *b ? 1 : 0;
            writeAttribute(group, e.key, t.get(), &v, file, object);
        } else if (const std::int64_t* i = std::get_if<std::int64_t>(&e.value)) {
            Hdf5Id t = copyType(H5T_STD_I64LE, file);
            writeAttribute(group, e.key, t.get(), i, file, object);
        } else if (const double* d = std::get_if<double>(&e.value)) {
            Hdf5Id t = copyType(H5T_IEEE_F64LE, file);
            writeAttribute(group, e.key, t.get(), d, file, object);
        } else {
            writeStringAttribute(group, e.key, std::get<std::string>(e.value), file, object);
        }
        if (!e.comment.empty()) writeStringAttribute(group, kCommentPrefix + e.key, e.comment, file, object);
    }
}

/// Read a scalar string attribute (fixed or variable length).
std::string readStringAttribute(hid_t attr, hid_t ftype, const std::filesystem::path& file,
                                const std::string& object) {
    if (H5Tis_variable_str(ftype) > 0) {
        Hdf5Id mt = copyType(H5T_C_S1, file);
        H5Tset_size(mt.get(), H5T_VARIABLE);
        H5Tset_cset(mt.get(), H5Tget_cset(ftype));
        char* p = nullptr;
        if (H5Aread(attr, mt.get(), &p) < 0) throwHdf5Error("cannot read string attribute", file, object);
        std::string s = p ? p : "";
        H5free_memory(p);
        return s;
    }
    std::size_t n = H5Tget_size(ftype);
    std::vector<char> buf(n + 1, '\0');
    if (H5Aread(attr, ftype, buf.data()) < 0) throwHdf5Error("cannot read string attribute", file, object);
    std::string s(buf.data(), strnlen(buf.data(), n));
    if (H5Tget_strpad(ftype) == H5T_STR_SPACEPAD)
        while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

std::string readNamedStringAttribute(hid_t obj, const char* name, const std::filesystem::path& file,
                                     const std::string& object) {
    htri_t has = H5Aexists(obj, name);
    if (has < 0) throwHdf5Error(std::string("H5Aexists '") + name + "'", file, object);
    if (has == 0) return {};
    Hdf5Id attr(checkHdf5(H5Aopen(obj, name, H5P_DEFAULT), std::string("cannot open attribute '") + name + "'",
                          file, object));
    Hdf5Id ft(checkHdf5(H5Aget_type(attr.get()), "H5Aget_type", file, object));
    if (H5Tget_class(ft.get()) != H5T_STRING)
        throw Hdf5Error(std::string("attribute '") + name + "' of '" + object + "' is not a string", file.string());
    return readStringAttribute(attr.get(), ft.get(), file, object);
}

struct AttrVisit {
    const std::filesystem::path* file;
    std::string object;
    PropertyList* md;
    std::vector<std::pair<std::string, std::string>> comments;
    std::string error;
};

herr_t visitAttribute(hid_t loc, const char* name, const H5A_info_t*, void* data) {
    auto* v = static_cast<AttrVisit*>(data);
    try {
        Hdf5Id attr(checkHdf5(H5Aopen(loc, name, H5P_DEFAULT), std::string("cannot open attribute '") + name + "'",
                              *v->file, v->object));
        Hdf5Id space(checkHdf5(H5Aget_space(attr.get()), "H5Aget_space", *v->file, v->object));
        if (H5Sget_simple_extent_type(space.get()) != H5S_SCALAR) return 0;  // not ours: skip
        Hdf5Id ft(checkHdf5(H5Aget_type(attr.get()), "H5Aget_type", *v->file, v->object));
        std::string key = name;
        switch (H5Tget_class(ft.get())) {
            case H5T_STRING: {
                std::string s = readStringAttribute(attr.get(), ft.get(), *v->file, v->object);
                if (key.rfind(kCommentPrefix, 0) == 0)
                    v->comments.emplace_back(key.substr(std::strlen(kCommentPrefix)), s);
                else
                    v->md->set(key, PropertyList::Value(s));
                break;
            }
            case H5T_INTEGER: {
                std::int64_t i = 0;
                if (H5Aread(attr.get(), H5T_NATIVE_INT64, &i) < 0)
                    throwHdf5Error("cannot read attribute '" + key + "'", *v->file, v->object);
                v->md->set(key, PropertyList::Value(i));
                break;
            }
            case H5T_FLOAT: {
                double d = 0;
                if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &d) < 0)
                    throwHdf5Error("cannot read attribute '" + key + "'", *v->file, v->object);
                v->md->set(key, PropertyList::Value(d));
                break;
            }
            case H5T_ENUM: {
                Hdf5Id bt = boolType(*v->file);
                signed char b = 0;
                if (H5Aread(attr.get(), bt.get(), &b) < 0) {
                    H5Eclear2(H5E_DEFAULT);
                    return 0;  // an enum that is not boolean: skip
                }
                v->md->set(key, PropertyList::Value(b != 0));
                break;
            }
            default: break;  // compound, array...: not table metadata
        }
    } catch (const std::exception& e) {
        v->error = e.what();
        return -1;
    }
    return 0;
}

// ---- groups ----------------------------------------------------------------------------------

std::string normaliseGroup(const std::string& group, const std::filesystem::path& file) {
    std::string g;
    std::size_t i = 0;
    while (i <= group.size()) {
        std::size_t j = group.find('/', i);
        if (j == std::string::npos) j = group.size();
        if (j > i) {
            std::string part = group.substr(i, j - i);
            if (part == "." || part == "..") throw LogicError("Hdf5Catalog: bad group name '" + group + "'", file.string());
            g += '/';
            g += part;
        }
        i = j + 1;
    }
    if (g.empty()) throw LogicError("Hdf5Catalog: empty group name", file.string());
    return g;
}

bool tracksCreationOrder(hid_t group, bool attributes) {
    Hdf5Id gcpl(H5Gget_create_plist(group));
    if (!gcpl.valid()) return false;
    unsigned flags = 0;
    herr_t r = attributes ? H5Pget_attr_creation_order(gcpl.get(), &flags)
                          : H5Pget_link_creation_order(gcpl.get(), &flags);
    return r >= 0 && (flags & H5P_CRT_ORDER_INDEXED);
}

Hdf5Id createTableGroup(Hdf5File& file, const std::string& g) {
    if (!file.writable()) throw Hdf5Error("file is open read-only", file.path().string());
    if (file.exists(g)) throw ConflictError("HDF5 group '" + g + "' already exists", file.path().string());
    Hdf5Id lcpl(checkHdf5(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(link create)", file.path(), g));
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Hdf5Id gcpl(checkHdf5(H5Pcreate(H5P_GROUP_CREATE), "H5Pcreate(group create)", file.path(), g));
    if (H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
        H5Pset_attr_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0)
        throwHdf5Error("cannot set creation order tracking", file.path(), g);
    // No modification times in object headers: the same table must give the same bytes (rank-count
    // independence and resume checksums depend on it).
    if (H5Pset_obj_track_times(gcpl.get(), 0) < 0) throwHdf5Error("H5Pset_obj_track_times", file.path(), g);
    return Hdf5Id(checkHdf5(H5Gcreate2(file.id(), g.c_str(), lcpl.get(), gcpl.get(), H5P_DEFAULT),
                            "cannot create group", file.path(), g));
}

// ---- columns ---------------------------------------------------------------------------------

struct ColumnBuffer {
    const void* data = nullptr;
    std::vector<char> packed;  // strings
    std::size_t width = 0;     // strings
};

ColumnBuffer columnBuffer(const Table& t, std::size_t i, std::size_t strWidth) {
    ColumnBuffer b;
    std::visit(
        [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::vector<std::string>>) {
                b.width = std::max<std::size_t>(strWidth, 1);
                b.packed = packStrings(v, b.width);
                b.data = b.packed.data();
            } else {
                static const char dummy[8] = {};
                b.data = v.empty() ? static_cast<const void*>(dummy) : static_cast<const void*>(v.data());
            }
        },
        t.columnData(i));
    return b;
}

std::size_t elementSize(FieldType t, std::size_t strWidth) {
    switch (t) {
        case FieldType::Int32: return 4;
        case FieldType::Int64: return 8;
        case FieldType::Float32: return 4;
        case FieldType::Float64: return 8;
        case FieldType::Flag: return 1;
        case FieldType::String: return std::max<std::size_t>(strWidth, 1);
    }
    return 8;
}

Hdf5Id createColumn(hid_t group, const FieldInfo& f, hid_t ftype, std::size_t totalRows, std::size_t strWidth,
                    const Hdf5CatalogOptions& opt, const std::filesystem::path& file, const std::string& object) {
    const bool contiguous = opt.chunkRows == 0;
    hsize_t dims[1] = {totalRows};
    hsize_t maxdims[1] = {contiguous ? hsize_t(totalRows) : H5S_UNLIMITED};
    Hdf5Id space(checkHdf5(H5Screate_simple(1, dims, maxdims), "H5Screate_simple", file, object));
    Hdf5Id dcpl(checkHdf5(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)", file, object));
    if (H5Pset_obj_track_times(dcpl.get(), 0) < 0) throwHdf5Error("H5Pset_obj_track_times", file, object);
    if (!contiguous) {
        std::size_t chunk = std::min<std::size_t>(opt.chunkRows, std::max<std::size_t>(totalRows, 1));
    chunk = std::max<std::size_t>(1, std::min(chunk, kMaxChunkBytes / elementSize(f.type, strWidth)));
    hsize_t cdims[1] = {chunk};
    if (H5Pset_chunk(dcpl.get(), 1, cdims) < 0) throwHdf5Error("H5Pset_chunk", file, object);
    if (opt.deflateLevel > 0) {
        if (opt.shuffle && H5Pset_shuffle(dcpl.get()) < 0) throwHdf5Error("H5Pset_shuffle", file, object);
        if (H5Pset_deflate(dcpl.get(), static_cast<unsigned>(opt.deflateLevel)) < 0)
            throwHdf5Error("H5Pset_deflate", file, object);
    }
    }
    H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
    Hdf5Id dapl = uncachedAccess(file, object);
    Hdf5Id ds(checkHdf5(H5Dcreate2(group, f.name.c_str(), ftype, space.get(), H5P_DEFAULT, dcpl.get(), dapl.get()),
                        "cannot create column dataset", file, object));
    writeStringAttribute(ds.get(), "unit", f.unit, file, object);
    writeStringAttribute(ds.get(), "description", f.doc, file, object);
    return ds;
}

/// Shared by the serial and the parallel writer. `comm` is null for a serial write.
Hdf5ParallelWriteInfo writeImpl(Hdf5File& file, const std::string& group, const Table& table,
                                const Hdf5CatalogOptions& opt, const Communicator* comm) {
    opt.validate();
    const std::filesystem::path& path = file.path();
    const std::string g = normaliseGroup(group, path);
    const Schema& schema = table.schema();
    Hdf5ParallelWriteInfo info;
    info.localRows = static_cast<std::int64_t>(table.size());
    info.totalRows = info.localRows;

    // String widths (the longest value over every rank) and, in parallel, row offsets.
    std::vector<std::size_t> widths(schema.size(), 0);
    std::string localError;  // in parallel a local failure must reach every rank before any collective call
    try {
        for (std::size_t i = 0; i < schema.size(); ++i)
            if (schema.field(i).type == FieldType::String)
                widths[i] = maxStringLength(std::get<std::vector<std::string>>(table.columnData(i)),
                                            schema.field(i).name, path);
    } catch (const Error& e) {
        if (!comm) throw;
        localError = e.message();
    }
    if (comm) {
        auto errors = comm->allgather(localError);
        for (int r = 0; r < comm->size(); ++r)
            if (!errors[std::size_t(r)].empty())
                throw LogicError("writeTableParallel: rank " + std::to_string(r) + ": " + errors[std::size_t(r)],
                                 path.string(), g);
        // Every rank must hold the same schema and metadata; all ranks learn of a mismatch together.
        std::string sig = schema.signature() + "|";
        for (const auto& f : schema.fields()) sig += f.doc + "\x1f";
        for (const auto& e : table.metadata().entries())
            sig += "|" + e.key + "=" + PropertyList::format(e.value) + "#" + e.comment;
        auto sigs = comm->allgather(sig);
        for (int r = 1; r < comm->size(); ++r)
            if (sigs[std::size_t(r)] != sigs[0])
                throw LogicError("writeTableParallel: rank " + std::to_string(r) +
                                     " has a different schema or metadata than rank 0",
                                 path.string(), g);
        auto counts = comm->allgather(info.localRows);
        info.totalRows = 0;
        for (int r = 0; r < comm->size(); ++r) {
            if (r < comm->rank()) info.rowOffset += counts[std::size_t(r)];
            info.totalRows += counts[std::size_t(r)];
        }
        for (auto& w : widths) w = static_cast<std::size_t>(comm->allreduceMax(static_cast<std::int64_t>(w)));
    }

    Hdf5Id grp = createTableGroup(file, g);
    writeMetadata(grp.get(), table.metadata(), path, g);

    for (std::size_t i = 0; i < schema.size(); ++i) {
        const FieldInfo& f = schema.field(i);
        const std::string object = g + "/" + f.name;
        auto [ftype, mtype] = columnTypes(f.type, widths[i], path);
        Hdf5Id ds = createColumn(grp.get(), f, ftype.get(), static_cast<std::size_t>(info.totalRows), widths[i], opt,
                                 path, object);
        if (info.totalRows == 0) continue;
        ColumnBuffer buf = columnBuffer(table, i, widths[i]);
        if (!comm) {
            if (H5Dwrite(ds.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data) < 0)
                throwHdf5Error("cannot write column", path, object);
            continue;
        }
        Hdf5Id fspace(checkHdf5(H5Dget_space(ds.get()), "H5Dget_space", path, object));
        hsize_t local[1] = {static_cast<hsize_t>(info.localRows)};
        hsize_t memDims[1] = {std::max<hsize_t>(local[0], 1)};
        Hdf5Id mspace(checkHdf5(H5Screate_simple(1, memDims, nullptr), "H5Screate_simple", path, object));
        if (info.localRows > 0) {
            hsize_t start[1] = {static_cast<hsize_t>(info.rowOffset)};
            if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, local, nullptr) < 0)
                throwHdf5Error("H5Sselect_hyperslab", path, object);
        } else if (H5Sselect_none(fspace.get()) < 0 || H5Sselect_none(mspace.get()) < 0) {
            throwHdf5Error("H5Sselect_none", path, object);
        }
        Hdf5Id dxpl(checkHdf5(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate(transfer)", path, object));
        if (H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE) < 0) throwHdf5Error("H5Pset_dxpl_mpio", path, object);
        if (H5Dwrite(ds.get(), mtype.get(), mspace.get(), fspace.get(), dxpl.get(), buf.data) < 0)
            throwHdf5Error("collective write of column failed", path, object);
        H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
        uint32_t localCause = 0, globalCause = 0;
        if (H5Pget_mpio_actual_io_mode(dxpl.get(), &mode) < 0 ||
            H5Pget_mpio_no_collective_cause(dxpl.get(), &localCause, &globalCause) < 0)
            throwHdf5Error("cannot query the MPI-IO mode of the write", path, object);
        info.actualIoModes.push_back(static_cast<int>(mode));
        info.localNoCollectiveCause.push_back(localCause);
        info.globalNoCollectiveCause.push_back(globalCause);
    }
    return info;
}

// ---- reading ---------------------------------------------------------------------------------

struct LinkList {
    std::vector<std::string> names;
};

herr_t collectLink(hid_t, const char* name, const H5L_info_t*, void* data) {
    static_cast<LinkList*>(data)->names.emplace_back(name);
    return 0;
}

std::vector<std::string> childNames(hid_t group, const std::filesystem::path& file, const std::string& object) {
    LinkList list;
    hsize_t idx = 0;
    H5_index_t order = tracksCreationOrder(group, false) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    if (H5Literate(group, order, H5_ITER_INC, &idx, collectLink, &list) < 0)
        throwHdf5Error("cannot list group", file, object);
    return list.names;
}

/// The column type to use for a dataset's file type; throws Hdf5Error if unsupported.
FieldType fieldTypeOf(hid_t ftype, const std::filesystem::path& file, const std::string& object) {
    std::size_t size = H5Tget_size(ftype);
    switch (H5Tget_class(ftype)) {
        case H5T_INTEGER: {
            bool isSigned = H5Tget_sign(ftype) == H5T_SGN_2;
            if (size < 4 || (size == 4 && isSigned)) return FieldType::Int32;
            return FieldType::Int64;
        }
        case H5T_FLOAT: return size <= 4 ? FieldType::Float32 : FieldType::Float64;
        case H5T_ENUM: return FieldType::Flag;
        case H5T_STRING: return FieldType::String;
        default: break;
    }
    throw Hdf5Error("column '" + object + "' has an unsupported HDF5 datatype", file.string());
}

void readColumn(hid_t ds, hid_t ftype, Table& t, std::size_t i, std::size_t rows, const std::filesystem::path& file,
                const std::string& object) {
    if (rows == 0) return;
    auto fail = [&] { throwHdf5Error("cannot read column", file, object); };
    Table::Column& col = t.columnData(i);
    switch (t.schema().field(i).type) {
        case FieldType::Int32:
            if (H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, std::get<0>(col).data()) < 0) fail();
            return;
        case FieldType::Int64:
            if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, std::get<1>(col).data()) < 0) fail();
            return;
        case FieldType::Float32:
            if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, std::get<2>(col).data()) < 0) fail();
            return;
        case FieldType::Float64:
            if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, std::get<3>(col).data()) < 0) fail();
            return;
        case FieldType::Flag: {
            Hdf5Id bt = boolType(file);
            if (H5Dread(ds, bt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, std::get<4>(col).data()) < 0)
                throwHdf5Error("cannot read flag column (not a FALSE/TRUE enum?)", file, object);
            return;
        }
        case FieldType::String: {
            auto& out = std::get<5>(col);
            if (H5Tis_variable_str(ftype) > 0) {
                Hdf5Id mt = copyType(H5T_C_S1, file);
                H5Tset_size(mt.get(), H5T_VARIABLE);
                H5Tset_cset(mt.get(), H5Tget_cset(ftype));
                std::vector<char*> ptrs(rows, nullptr);
                if (H5Dread(ds, mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0) fail();
                for (std::size_t r = 0; r < rows; ++r) out[r] = ptrs[r] ? ptrs[r] : "";
                Hdf5Id space(H5Dget_space(ds));
                H5Dvlen_reclaim(mt.get(), space.get(), H5P_DEFAULT, ptrs.data());
                return;
            }
            std::size_t w = H5Tget_size(ftype);
            Hdf5Id mt(checkHdf5(H5Tcopy(ftype), "H5Tcopy", file, object));
            std::vector<char> buf(rows * w);
            if (H5Dread(ds, mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) fail();
            bool spacePad = H5Tget_strpad(ftype) == H5T_STR_SPACEPAD;
            for (std::size_t r = 0; r < rows; ++r) {
                const char* p = buf.data() + r * w;
                std::string s(p, strnlen(p, w));
                if (spacePad)
                    while (!s.empty() && s.back() == ' ') s.pop_back();
                out[r] = std::move(s);
            }
            return;
        }
    }
}

Table readImpl(const Hdf5File& file, const std::string& group, const std::vector<std::string>* wanted) {
    const std::filesystem::path& path = file.path();
    const std::string g = normaliseGroup(group, path);
    if (!file.exists(g)) throw NotFoundError("HDF5 file has no group '" + g + "'", path.string());
    Hdf5Id grp(H5Gopen2(file.id(), g.c_str(), H5P_DEFAULT));
    if (!grp.valid()) throwHdf5Error("'" + g + "' is not a group", path, g);

    std::vector<std::string> names = wanted ? *wanted : childNames(grp.get(), path, g);
    Schema schema;
    std::vector<Hdf5Id> datasets, types;
    std::optional<hsize_t> rows;
    for (const auto& name : names) {
        const std::string object = g + "/" + name;
        if (wanted) {
            htri_t e = name.empty() || name.find('/') != std::string::npos ? 0 : H5Lexists(grp.get(), name.c_str(), H5P_DEFAULT);
            if (e < 0) throwHdf5Error("H5Lexists", path, object);
            if (e == 0) throw NotFoundError("HDF5 table '" + g + "' has no column '" + name + "'", path.string());
        }
        {
            Hdf5Id probe(checkHdf5(H5Oopen(grp.get(), name.c_str(), H5P_DEFAULT), "cannot open", path, object));
            if (H5Iget_type(probe.get()) != H5I_DATASET) {
                if (wanted) throw Hdf5Error("'" + object + "' is not a dataset", path.string());
                continue;  // a sub-group is not a column
            }
        }
        Hdf5Id dapl = uncachedAccess(path, object);
        Hdf5Id obj(checkHdf5(H5Dopen2(grp.get(), name.c_str(), dapl.get()), "cannot open column", path, object));
        Hdf5Id space(checkHdf5(H5Dget_space(obj.get()), "H5Dget_space", path, object));
        if (H5Sget_simple_extent_ndims(space.get()) != 1)
            throw Hdf5Error("column '" + object + "' is not one-dimensional", path.string());
        hsize_t n = 0;
        H5Sget_simple_extent_dims(space.get(), &n, nullptr);
        if (rows && *rows != n)
            throw Hdf5Error("columns of '" + g + "' have different lengths (" + std::to_string(*rows) + " and " +
                                std::to_string(n) + " for '" + name + "')",
                            path.string());
        rows = n;
        Hdf5Id ft(checkHdf5(H5Dget_type(obj.get()), "H5Dget_type", path, object));
        FieldInfo f;
        f.name = name;
        f.type = fieldTypeOf(ft.get(), path, object);
        f.unit = readNamedStringAttribute(obj.get(), "unit", path, object);
        f.doc = readNamedStringAttribute(obj.get(), "description", path, object);
        schema.addField(f);
        datasets.push_back(std::move(obj));
        types.push_back(std::move(ft));
    }
    Table t(std::move(schema), rows.value_or(0));
    for (std::size_t i = 0; i < datasets.size(); ++i)
        readColumn(datasets[i].get(), types[i].get(), t, i, t.size(), path, g + "/" + names[i]);

    AttrVisit visit{&path, g, &t.metadata(), {}, {}};
    hsize_t idx = 0;
    H5_index_t order = tracksCreationOrder(grp.get(), true) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    if (H5Aiterate2(grp.get(), order, H5_ITER_INC, &idx, visitAttribute, &visit) < 0) {
        if (!visit.error.empty()) throw Hdf5Error(visit.error, path.string());
        throwHdf5Error("cannot read table metadata", path, g);
    }
    for (const auto& [key, comment] : visit.comments)
        if (t.metadata().has(key)) t.metadata().set(key, t.metadata().get(key), comment);
    return t;
}

}  // namespace

void Hdf5CatalogOptions::validate() const {
    if (chunkRows == 0 && deflateLevel > 0)
        throw ConfigError("Hdf5CatalogOptions: compression needs chunks (chunkRows >= 1)");
    if (deflateLevel < 0 || deflateLevel > 9) throw ConfigError("Hdf5CatalogOptions.deflateLevel must be in 0..9");
}

bool Hdf5ParallelWriteInfo::allCollective() const {
    for (int m : actualIoModes)
        if (m == static_cast<int>(H5D_MPIO_NO_COLLECTIVE) || m == static_cast<int>(H5D_MPIO_CHUNK_INDEPENDENT) ||
            m == static_cast<int>(H5D_MPIO_CHUNK_MIXED))
            return false;
    return true;
}

void writeTable(Hdf5File& file, const std::string& group, const Table& table, const Hdf5CatalogOptions& options) {
    silenceHdf5Errors();
    writeImpl(file, group, table, options, nullptr);
}

Hdf5ParallelWriteInfo writeTableParallel(Hdf5File& file, const std::string& group, const Table& localRows,
                                         const Hdf5CatalogOptions& options) {
    silenceHdf5Errors();
    const Communicator& comm = file.communicator();
    return writeImpl(file, group, localRows, options, &comm);
}

Table readTable(const Hdf5File& file, const std::string& group) {
    silenceHdf5Errors();
    return readImpl(file, group, nullptr);
}

Table readTable(const Hdf5File& file, const std::string& group, const std::vector<std::string>& columns) {
    silenceHdf5Errors();
    return readImpl(file, group, &columns);
}

std::vector<std::string> listTables(const Hdf5File& file, const std::string& parent) {
    silenceHdf5Errors();
    Hdf5Id grp(H5Gopen2(file.id(), parent.c_str(), H5P_DEFAULT));
    if (!grp.valid()) {
        hdf5ErrorStackMessage();
        throw NotFoundError("HDF5 file has no group '" + parent + "'", file.path().string());
    }
    std::vector<std::string> out;
    for (const auto& name : childNames(grp.get(), file.path(), parent)) {
        Hdf5Id obj(H5Oopen(grp.get(), name.c_str(), H5P_DEFAULT));
        if (obj.valid() && H5Iget_type(obj.get()) == H5I_GROUP) out.push_back(name);
    }
    return out;
}

void writeCatalog(const std::filesystem::path& path, const std::string& group, const Table& table,
                  const Hdf5CatalogOptions& options) {
    options.validate();
    AtomicFile out(path);
    try {
        Hdf5File f(out.tempPath(), Hdf5File::Mode::CreateExclusive);
        writeTable(f, group, table, options);
        f.close();
    } catch (const Hdf5Error& e) {
        throw Hdf5Error(e.message() + " (writing temp file " + out.tempPath().string() + ")", path.string());
    }
    out.commit();
}

Table readCatalog(const std::filesystem::path& path, const std::string& group) {
    Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    return readTable(f, group);
}

Hdf5ParallelWriteInfo writeCatalogParallel(const Communicator& comm, const std::filesystem::path& path,
                                           const std::string& group, const Table& localRows,
                                           const Hdf5CatalogOptions& options) {
    options.validate();
    // Rank 0 owns the temp name and the final rename; a failed write leaves nothing behind.
    std::optional<AtomicFile> out;
    if (comm.rank() == 0) out.emplace(path);
    std::filesystem::path temp = comm.broadcast(out ? out->tempPath().string() : std::string(), 0);
    Hdf5ParallelWriteInfo info;
    try {
        Hdf5File f = Hdf5File::openParallel(comm, temp, Hdf5File::Mode::Create);
        info = writeTableParallel(f, group, localRows, options);
        f.close();
    } catch (const Hdf5Error& e) {
        throw Hdf5Error(e.message() + " (writing temp file " + temp.string() + ")", path.string());
    }
    std::string error;
    if (out) {
        try {
            out->commit();
        } catch (const Error& e) {
            error = e.message();
        }
    }
    error = comm.broadcast(error, 0);
    if (!error.empty()) throw IoError(error, path.string());
    return info;
}

}  // namespace drp
