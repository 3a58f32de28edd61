// Test-only reader for the messages the connectors write: splits headers and body, unfolds
// headers, splits multipart bodies on their boundary and decodes quoted-printable, base64 and
// RFC 2047 encoded words. Deliberately independent of connectors/mime.cc.
#ifndef ITINERA_TESTS_CONNECTORS_MIME_PARSE_H_
#define ITINERA_TESTS_CONNECTORS_MIME_PARSE_H_

#include <cctype>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace itinera::connectors::testing {

struct Entity {
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded, in order
  std::string body;

  // The first header with this name (case-insensitive), or "" when absent.
  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          }))
        return v;
    }
    return "";
  }
};

inline Entity ParseEntity(std::string_view raw) {
  Entity e;
  size_t split = raw.find("\r\n\r\n");
  std::string_view head = raw.substr(0, split);
  e.body = split == std::string_view::npos ? "" : std::string(raw.substr(split + 4));
  size_t pos = 0;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(pos, end - pos);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !e.headers.empty()) {
      e.headers.back().second += std::string(line);  // unfold: drop the CRLF only
    } else {
      size_t colon = line.find(':');
      std::string value(line.substr(colon + 1));
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      e.headers.emplace_back(std::string(line.substr(0, colon)), value);
    }
    pos = end + 2;
  }
  return e;
}

// The boundary parameter of a Content-Type value.
inline std::string BoundaryOf(std::string_view content_type) {
  size_t b = content_type.find("boundary=\"");
  if (b == std::string_view::npos) return "";
  b += 10;
  return std::string(content_type.substr(b, content_type.find('"', b) - b));
}

// The parts between "--boundary" lines, without the CRLF that precedes each delimiter.
inline std::vector<std::string> SplitMultipart(std::string_view body, const std::string& boundary) {
  std::vector<std::string> parts;
  const std::string delim = "--" + boundary;
  size_t pos = body.find(delim);
  while (pos != std::string_view::npos) {
    size_t start = pos + delim.size();
    if (body.substr(start, 2) == "--") break;  // close delimiter
    start += 2;                                // CRLF after the delimiter
    size_t next = body.find("\r\n" + delim, start);
    if (next == std::string_view::npos) break;
    parts.emplace_back(body.substr(start, next - start));
    pos = next + 2;
  }
  return parts;
}

inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

inline std::string DecodeQuotedPrintable(std::string_view in, bool q_encoding = false) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '=' && in.substr(i + 1, 2) == "\r\n") {
      i += 2;  // soft break
    } else if (in[i] == '=' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
               HexValue(in[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2]));
      i += 2;
    } else if (q_encoding && in[i] == '_') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

inline std::string DecodeBase64(std::string_view in) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned value = 0;
  int bits = 0;
  for (char c : in) {
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) continue;  // CRLF, padding
    value = (value << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((value >> bits) & 0xFF);
    }
  }
  return out;
}

// Decodes a header value made of encoded words (whitespace between words is dropped).
inline std::string DecodeWords(std::string_view value) {
  std::string out;
  size_t pos = 0;
  bool last_was_word = false;
  while (pos < value.size()) {
    size_t start = value.find("=?", pos);
    std::string_view gap =
        value.substr(pos, start == std::string_view::npos ? value.npos : start - pos);
    bool blank = gap.find_first_not_of(" \t") == std::string_view::npos;
    if (!(last_was_word && blank)) out += std::string(gap);
    if (start == std::string_view::npos) break;
    size_t q1 = value.find('?', start + 2);
    size_t q2 = value.find('?', q1 + 1);
    size_t end = value.find("?=", q2 + 1);
    char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
    std::string_view text = value.substr(q2 + 1, end - q2 - 1);
    out += enc == 'B' ? DecodeBase64(text) : DecodeQuotedPrintable(text, true);
    pos = end + 2;
    last_was_word = true;
  }
  return out;
}

// The decoded body of a single part, by its Content-Transfer-Encoding.
inline std::string DecodedBody(const Entity& e) {
  std::string cte = e.Header("Content-Transfer-Encoding");
  if (cte == "base64") return DecodeBase64(e.body);
  if (cte == "quoted-printable") return DecodeQuotedPrintable(e.body);
  return e.body;
}

}  // namespace itinera::connectors::testing

#endif  // ITINERA_TESTS_CONNECTORS_MIME_PARSE_H_
