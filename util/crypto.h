// Keyed hashing and byte encodings for signed tokens.
//
// The only place OpenSSL is used by itinera_util; everything else sees plain std::string bytes.
// Binary values (keys, MACs, decoded bytes) travel as std::string holding raw octets. Pure
// functions; thread-safe.
#ifndef ITINERA_UTIL_CRYPTO_H_
#define ITINERA_UTIL_CRYPTO_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace itinera {

inline constexpr size_t kHmacSha256Bytes = 32;

// HMAC-SHA256 (RFC 2104) of `data` under `key`: 32 raw bytes. An empty key is allowed. Returns an
// empty string only if OpenSSL itself fails, which callers must treat as "no MAC".
std::string HmacSha256(std::string_view key, std::string_view data);

// Lowercase hexadecimal, two digits per byte.
std::string HexEncode(std::string_view bytes);

// Base64 with the URL-safe alphabet ('-', '_') and no '=' padding (RFC 4648 section 5).
std::string Base64UrlEncode(std::string_view bytes);

// Strict inverse of Base64UrlEncode: nullopt on any character outside the alphabet, on padding,
// on an impossible length, or on non-zero unused trailing bits. Every byte string therefore has
// exactly one accepted encoding, so an altered token can never decode to the original bytes.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// Equality whose running time depends only on the lengths, not on where the bytes differ. Use it
// to compare MACs. Different lengths compare unequal (lengths are not secret).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace itinera

#endif  // ITINERA_UTIL_CRYPTO_H_
