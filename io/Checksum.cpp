#include "io/Checksum.h"

#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

#include "core/Error.h"

namespace drp {

namespace {

std::string toHex(const unsigned char* bytes, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    return out;
}

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

struct ChecksumStream::State {
    XXH3_state_t* s = nullptr;
};

ChecksumStream::ChecksumStream() : state_(std::make_unique<State>()) {
    state_->s = XXH3_createState();
    if (!state_->s) throw std::bad_alloc();
    XXH3_128bits_reset(state_->s);
}

ChecksumStream::~ChecksumStream() { XXH3_freeState(state_->s); }

void ChecksumStream::update(const void* data, std::size_t size) {
    if (size == 0) return;
    XXH3_128bits_update(state_->s, data, size);
    bytes_ += size;
}

Checksum ChecksumStream::digest() const {
    XXH128_hash_t h = XXH3_128bits_digest(state_->s);
    return Checksum(h.high64, h.low64);
}

Checksum Checksum::ofBuffer(const void* data, std::size_t size) {
    XXH128_hash_t h = XXH3_128bits(size ? data : "", size);
    return Checksum(h.high64, h.low64);
}

Checksum Checksum::ofFile(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(std::string("cannot open for checksum: ") + std::strerror(errno), path.string());
    ChecksumStream stream;
    std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            throw IoError(std::string("read failed while checksumming: ") + std::strerror(e), path.string());
        }
        if (n == 0) break;
        stream.update(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return stream.digest();
}

Checksum Checksum::fromHex(std::string_view hex) {
    if (hex.size() != 32) throw InvalidInputError("checksum '" + std::string(hex) + "' is not 32 hex digits");
    std::uint64_t parts[2] = {0, 0};
    for (std::size_t i = 0; i < 32; ++i) {
        int d = hexDigit(hex[i]);
        if (d < 0) throw InvalidInputError("checksum '" + std::string(hex) + "' is not 32 hex digits");
        parts[i / 16] = (parts[i / 16] << 4) | static_cast<std::uint64_t>(d);
    }
    return Checksum(parts[0], parts[1]);
}

std::string Checksum::hex() const {
    XXH128_hash_t h;
    h.high64 = high_;
    h.low64 = low_;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    return toHex(c.digest, sizeof(c.digest));
}

std::string checksum64Hex(std::string_view bytes) {
    XXH64_hash_t h = XXH3_64bits(bytes.size() ? bytes.data() : "", bytes.size());
    XXH64_canonical_t c;
    XXH64_canonicalFromHash(&c, h);
    return toHex(c.digest, sizeof(c.digest));
}

}  // namespace drp
