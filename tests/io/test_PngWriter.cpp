// PngWriter: signature, chunk CRCs, the stored zlib stream and its Adler-32, and a decode by Python's
// zlib when available; known CRC / Adler values.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>

#include "core/Error.h"
#include "io/PngWriter.h"
#include "tests/support/TestSupport.h"

using namespace drp;

namespace {

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return std::uint32_t(b[at]) << 24 | std::uint32_t(b[at + 1]) << 16 | std::uint32_t(b[at + 2]) << 8 | b[at + 3];
}

}  // namespace

TEST(PngWriter, KnownChecksums) {
    const std::string s = "123456789";
    const std::vector<std::uint8_t> v(s.begin(), s.end());
    EXPECT_EQ(crc32Png(v), 0xCBF43926u);
    EXPECT_EQ(adler32(v), 0x091E01DEu);
    std::vector<std::uint8_t> big(200000, 0xFF);
    // Adler-32 continuation equals the one-shot value.
    const auto one = adler32(big);
    const auto two = adler32(std::span(big).subspan(70000), adler32(std::span(big).first(70000)));
    EXPECT_EQ(one, two);
}

TEST(PngWriter, StructureAndDecode) {
    std::mt19937 rng(3);
    for (int channels : {1, 3, 4}) {
        const int w = 301, h = 257;  // > 65535 bytes: several stored blocks
        std::vector<std::uint8_t> px(std::size_t(w) * h * channels);
        for (auto& p : px) p = std::uint8_t(rng());
        const std::vector<std::uint8_t> png = encodePng(w, h, channels, px);
        const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
        ASSERT_TRUE(std::equal(sig, sig + 8, png.begin()));
        // Walk the chunks and check their CRCs.
        std::size_t at = 8;
        std::vector<std::string> types;
        std::vector<std::uint8_t> idat;
        while (at < png.size()) {
            const std::uint32_t len = be32(png, at);
            const std::string type(png.begin() + at + 4, png.begin() + at + 8);
            types.push_back(type);
            const std::uint32_t crc = crc32Png(std::span(png).subspan(at + 4, len + 4));
            EXPECT_EQ(crc, be32(png, at + 8 + len)) << type;
            if (type == "IHDR") {
                EXPECT_EQ(be32(png, at + 8), std::uint32_t(w));
                EXPECT_EQ(be32(png, at + 12), std::uint32_t(h));
                EXPECT_EQ(png[at + 16], 8);
                EXPECT_EQ(png[at + 17], channels == 1 ? 0 : channels == 3 ? 2 : 6);
            }
            if (type == "IDAT") idat.insert(idat.end(), png.begin() + at + 8, png.begin() + at + 8 + len);
            at += 12 + len;
        }
        EXPECT_EQ(at, png.size());
        ASSERT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
        // Inflate the stored blocks by hand.
        ASSERT_EQ(idat[0], 0x78);
        EXPECT_EQ((idat[0] * 256 + idat[1]) % 31, 0);
        std::vector<std::uint8_t> raw;
        std::size_t p = 2;
        bool last = false;
        while (!last) {
            last = idat[p] & 1;
            EXPECT_EQ(idat[p] >> 1, 0);  // stored
            const int len = idat[p + 1] | idat[p + 2] << 8, nlen = idat[p + 3] | idat[p + 4] << 8;
            EXPECT_EQ(len ^ 0xFFFF, nlen);
            raw.insert(raw.end(), idat.begin() + p + 5, idat.begin() + p + 5 + len);
            p += 5 + len;
        }
        EXPECT_EQ(be32(idat, p), adler32(raw));
        ASSERT_EQ(raw.size(), std::size_t(w * channels + 1) * h);
        for (int y = 0; y < h; ++y) {
            EXPECT_EQ(raw[std::size_t(y) * (w * channels + 1)], 0);
            EXPECT_TRUE(std::equal(px.begin() + std::ptrdiff_t(y) * w * channels,
                                   px.begin() + std::ptrdiff_t(y + 1) * w * channels,
                                   raw.begin() + std::ptrdiff_t(y) * (w * channels + 1) + 1));
        }
    }
    EXPECT_THROW(encodePng(0, 5, 1, {}), InvalidInputError);
    EXPECT_THROW(encodePng(2, 2, 2, std::vector<std::uint8_t>(8)), InvalidInputError);
    EXPECT_THROW(encodePng(2, 2, 1, std::vector<std::uint8_t>(3)), InvalidInputError);
}

TEST(PngWriter, WrittenFileDecodesWithPython) {
    test::TempDir dir;
    const int w = 40, h = 30;
    std::vector<std::uint8_t> px(w * h * 3);
    for (int i = 0; i < w * h * 3; ++i) px[i] = std::uint8_t(i * 7);
    const auto path = dir / "map.png";
    writePng(path, w, h, 3, px);
    ASSERT_TRUE(std::filesystem::exists(path));
    EXPECT_EQ(std::filesystem::file_size(path), encodePng(w, h, 3, px).size());
    const std::string py = test::pythonWith("zlib,struct");
    if (py.empty()) GTEST_SKIP() << "python3 not available";
    const std::string script =
        "import sys,zlib,struct\n"
        "b=open(sys.argv[1],'rb').read()\n"
        "assert b[:8]==b'\\x89PNG\\r\\n\\x1a\\n'\n"
        "i=8;d=b''\n"
        "while i<len(b):\n"
        "  n,=struct.unpack('>I',b[i:i+4]);t=b[i+4:i+8];c=b[i+8:i+8+n]\n"
        "  assert struct.unpack('>I',b[i+8+n:i+12+n])[0]==zlib.crc32(t+c)\n"
        "  if t==b'IHDR': W,H,bd,ct=struct.unpack('>IIBB',c[:10])\n"
        "  if t==b'IDAT': d+=c\n"
        "  i+=12+n\n"
        "r=zlib.decompress(d);s=W*3+1\n"
        "px=b''.join(r[y*s+1:(y+1)*s] for y in range(H))\n"
        "print(W,H,ct,sum(px)%100000)\n";
    std::ofstream(dir / "check.py") << script;
    std::string out;
    ASSERT_EQ(test::runCommand(py + " " + (dir / "check.py").string() + " " + path.string(), &out), 0) << out;
    long sum = 0;
    for (auto v : px) sum += v;
    EXPECT_EQ(out, std::to_string(w) + " " + std::to_string(h) + " 2 " + std::to_string(sum % 100000) + "\n");
}
