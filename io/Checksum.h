// Checksums of files and buffers with xxHash XXH3-128 (fast, non-cryptographic: detects corruption
// and torn writes, not tampering). The text form is the 32-digit lower-case hex of the canonical
// (big-endian) representation, the same digits `xxhsum -H2` prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace drp {

class Checksum {
public:
    Checksum() = default;
    Checksum(std::uint64_t high, std::uint64_t low) : high_(high), low_(low) {}

    static Checksum ofBuffer(const void* data, std::size_t size);
    static Checksum ofString(std::string_view bytes) { return ofBuffer(bytes.data(), bytes.size()); }
    /// Streams the file; throws IoError (naming the file) if it cannot be opened or read.
    static Checksum ofFile(const std::filesystem::path& path);
    /// Parse the 32-digit hex form; throws InvalidInputError on anything else.
    static Checksum fromHex(std::string_view hex);

    std::string hex() const;
    std::uint64_t high() const { return high_; }
    std::uint64_t low() const { return low_; }
    friend bool operator==(const Checksum&, const Checksum&) = default;

private:
    std::uint64_t high_ = 0;
    std::uint64_t low_ = 0;
};

/// Incremental form: update() any number of times, then digest(); equals Checksum::ofBuffer of the
/// concatenated bytes.
class ChecksumStream {
public:
    ChecksumStream();
    ~ChecksumStream();
    ChecksumStream(const ChecksumStream&) = delete;
    ChecksumStream& operator=(const ChecksumStream&) = delete;
    void update(const void* data, std::size_t size);
    Checksum digest() const;
    std::uint64_t bytes() const { return bytes_; }

private:
    struct State;
    std::unique_ptr<State> state_;
    std::uint64_t bytes_ = 0;
};

/// XXH3-64 of a buffer as 16 hex digits (short per-record checksums, e.g. manifest lines).
std::string checksum64Hex(std::string_view bytes);

}  // namespace drp
