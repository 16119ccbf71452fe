#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/Error.h"
#include "io/Checksum.h"
#include "tests/support/TestSupport.h"

using namespace drp;

TEST(Checksum, KnownVectorOfEmptyInput) {
    // XXH3-128 of zero bytes, seed 0 (xxHash's reference value).
    EXPECT_EQ(Checksum::ofBuffer(nullptr, 0).hex(), "99aa06d3014798d86001c324468d497f");
    EXPECT_EQ(Checksum::ofString("").high(), 0x99aa06d3014798d8ULL);
    EXPECT_EQ(Checksum::ofString("").low(), 0x6001c324468d497fULL);
}

TEST(Checksum, BufferFileAndStreamAgreeManySizes) {
    test::TempDir dir;
    std::mt19937_64 rng(7);
    for (std::size_t size : {0ul, 1ul, 15ul, 16ul, 17ul, 240ul, 241ul, 1024ul, 65537ul, (1ul << 20) + 3, 3ul << 20}) {
        std::string data(size, '\0');
        for (auto& c : data) c = static_cast<char>(rng());
        Checksum a = Checksum::ofString(data);
        std::string fname = "f";
        fname += std::to_string(size);
        auto path = dir / fname;
        std::ofstream(path, std::ios::binary).write(data.data(), std::streamsize(size));
        EXPECT_EQ(Checksum::ofFile(path), a) << size;
        ChecksumStream s;
        std::size_t pos = 0;
        while (pos < size) {
            std::size_t n = std::min<std::size_t>(size - pos, 1 + rng() % 70000);
            s.update(data.data() + pos, n);
            pos += n;
        }
        EXPECT_EQ(s.digest(), a) << size;
        EXPECT_EQ(s.bytes(), size);
        EXPECT_EQ(Checksum::fromHex(a.hex()), a);
        EXPECT_EQ(a.hex().size(), 32u);
        if (size > 0) {
            data[rng() % size] ^= static_cast<char>(1 << (rng() % 8));
            EXPECT_NE(Checksum::ofString(data), a) << "a single bit flip must change the checksum";
        }
    }
}

TEST(Checksum, ErrorsNameTheFile) {
    try {
        Checksum::ofFile("/nonexistent/drp/file.bin");
        FAIL() << "expected IoError";
    } catch (const IoError& e) {
        EXPECT_EQ(e.file(), "/nonexistent/drp/file.bin");
    }
    EXPECT_THROW(Checksum::fromHex("abc"), InvalidInputError);
    EXPECT_THROW(Checksum::fromHex(std::string(31, '0') + "g"), InvalidInputError);
    EXPECT_EQ(checksum64Hex("").size(), 16u);
    EXPECT_NE(checksum64Hex("a"), checksum64Hex("b"));
}
