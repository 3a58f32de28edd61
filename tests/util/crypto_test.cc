#include "util/crypto.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace itinera {
namespace {

std::string Repeat(char c, size_t n) { return std::string(n, c); }

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string Range(int from, int to) {  // bytes from..to inclusive
  std::string out;
  for (int v = from; v <= to; ++v) out.push_back(static_cast<char>(v));
  return out;
}

struct HmacCase {
  const char* name;
  std::string key;
  std::string data;
  const char* expected_hex;
  size_t truncate = 0;  // compare only this many leading bytes (RFC 4231 test case 5)
};

// RFC 4231 section 4, HMAC-SHA-256 results.
TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  const HmacCase cases[] = {
      {"1", Repeat('\x0b', 20), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"2", "Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"3", Repeat('\xaa', 20), Repeat('\xdd', 50),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {"4", Range(0x01, 0x19), Repeat('\xcd', 50),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {"5", Repeat('\x0c', 20), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b", 16},
      {"6", Repeat('\xaa', 131), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {"7", Repeat('\xaa', 131),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const HmacCase& c : cases) {
    const std::string mac = HmacSha256(c.key, c.data);
    ASSERT_EQ(mac.size(), kHmacSha256Bytes) << "case " << c.name;
    const std::string hex = HexEncode(mac);
    EXPECT_EQ(c.truncate ? hex.substr(0, c.truncate * 2) : hex, c.expected_hex)
        << "case " << c.name;
  }
}

// Each thread keeps a context keyed with the last key it used: switching keys back and forth,
// and several threads at once, must give every MAC its own key's value.
TEST(CryptoTest, HmacSha256KeepsEachKeyApartAcrossCallsAndThreads) {
  const std::string jefe = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  const std::string empty = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  auto run = [&](int rounds) {
    int wrong = 0;
    for (int i = 0; i < rounds; ++i) {
      wrong += HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")) != jefe;
      wrong += HexEncode(HmacSha256("", "")) != empty;
      wrong += HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")) != jefe;
      // A key that is a prefix of the cached one is another key.
      wrong += HexEncode(HmacSha256("Jef", "what do ya want for nothing?")) == jefe;
    }
    return wrong;
  };
  EXPECT_EQ(run(3), 0);
  std::vector<int> wrong(4, -1);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < wrong.size(); ++t) threads.emplace_back([&, t] { wrong[t] = run(200); });
  for (auto& t : threads) t.join();
  for (int w : wrong) EXPECT_EQ(w, 0);
}

TEST(CryptoTest, HmacSha256AcceptsEmptyKeyAndData) {
  EXPECT_EQ(HexEncode(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CryptoTest, HexEncodesLowercase) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(Bytes({0x00, 0x0f, 0xa5, 0xff})), "000fa5ff");
}

TEST(CryptoTest, Base64UrlMatchesRfc4648WithoutPadding) {
  // RFC 4648 section 10 vectors, padding removed.
  const std::pair<const char*, const char*> cases[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(Base64UrlEncode(plain), encoded);
    EXPECT_EQ(Base64UrlDecode(encoded), std::optional<std::string>(plain));
  }
  // The URL-safe alphabet: 0xfb 0xff encodes with '-' and '_' where base64 has '+' and '/'.
  EXPECT_EQ(Base64UrlEncode(Bytes({0xfb, 0xff, 0xbf})), "-_-_");
}

TEST(CryptoTest, Base64UrlRoundTripsEveryByteAndLength) {
  const std::string all = Range(0, 255);
  for (size_t n = 0; n <= all.size(); ++n) {
    const std::string bytes = all.substr(all.size() - n);
    const std::string encoded = Base64UrlEncode(bytes);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    EXPECT_EQ(Base64UrlDecode(encoded), std::optional<std::string>(bytes)) << n;
  }
}

TEST(CryptoTest, Base64UrlRejectsInvalidInput) {
  for (const char* bad : {
           "Zg==",             // padding
           "Zm9v=",            // padding
           "Z",                // one character cannot hold a byte
           "Zm9vY",            // nor can a final group of one
           "Zm9v+g",           // standard-alphabet character
           "Zm9v/g",           // standard-alphabet character
           "Zm 9v",            // whitespace
           "Zm9v\n",           // newline
           "Zh",               // non-zero unused bits ("Zg" is canonical)
           "Zm9",              // non-zero unused bits ("Zm8" is canonical)
           "Zm9vYmF\xc3\xa9",  // non-ASCII
       }) {
    EXPECT_FALSE(Base64UrlDecode(bad)) << bad;
  }
  EXPECT_FALSE(Base64UrlDecode(std::string("Zm9v\0Zg", 7)));
}

TEST(CryptoTest, ConstantTimeEqualComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEqual("", "a"));
  EXPECT_TRUE(ConstantTimeEqual(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(ConstantTimeEqual(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace itinera
