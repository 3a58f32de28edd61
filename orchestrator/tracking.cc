#include "orchestrator/tracking.h"

#include "util/crypto.h"

namespace itinera {
namespace {

// Payload: version, kind, link index (big-endian u16), message id length, message id.
constexpr uint8_t kTokenVersion = 1;
constexpr size_t kHeaderBytes = 5;
constexpr size_t kMacBytes = 16;  // HMAC-SHA256 truncated to 128 bits
// Keeps these MACs distinct from any other use of the same secret.
constexpr std::string_view kMacDomain = "itinera/tracking/v1\n";
constexpr size_t kMaxTrackedUrlBytes = 2048;

std::string TokenMac(std::string_view payload, std::string_view secret) {
  std::string input(kMacDomain);
  input.append(payload);
  std::string mac = HmacSha256(secret, input);
  if (mac.size() != kHmacSha256Bytes) return {};
  mac.resize(kMacBytes);
  return mac;
}

bool IsKnownKind(uint8_t kind) {
  return kind == static_cast<uint8_t>(TrackingKind::kOpen) ||
         kind == static_cast<uint8_t>(TrackingKind::kClick) ||
         kind == static_cast<uint8_t>(TrackingKind::kUnsubscribe);
}

std::string_view TrimSlash(std::string_view public_url) {
  while (!public_url.empty() && public_url.back() == '/') public_url.remove_suffix(1);
  return public_url;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (Lower(text[i]) != Lower(prefix[i])) return false;
  }
  return true;
}

bool IsHtmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// The code point of a numeric reference body ("#38", "#x26"), or nullopt.
std::optional<uint32_t> NumericReference(std::string_view body) {
  if (body.size() < 2 || body[0] != '#') return std::nullopt;
  const bool hex = body[1] == 'x' || body[1] == 'X';
  std::string_view digits = body.substr(hex ? 2 : 1);
  if (digits.empty() || digits.size() > 7) return std::nullopt;
  uint32_t cp = 0;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (hex && Lower(c) >= 'a' && Lower(c) <= 'f') {
      d = Lower(c) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
  }
  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  return cp;
}

// Decodes the character references a template author writes in an href: &amp; &lt; &gt; &quot;
// &apos; and numeric ones. Anything else is kept as written.
std::string DecodeEntities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    const size_t semi = text.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back(text[i++]);
      continue;
    }
    const std::string_view body = text.substr(i + 1, semi - i - 1);
    if (body == "amp") {
      out.push_back('&');
    } else if (body == "lt") {
      out.push_back('<');
    } else if (body == "gt") {
      out.push_back('>');
    } else if (body == "quot") {
      out.push_back('"');
    } else if (body == "apos") {
      out.push_back('\'');
    } else if (auto cp = NumericReference(body)) {
      AppendUtf8(*cp, out);
    } else {
      out.push_back(text[i++]);
      continue;
    }
    i = semi + 1;
  }
  return out;
}

std::string_view TrimHtmlSpace(std::string_view text) {
  while (!text.empty() && IsHtmlSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsHtmlSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Whether `url` (decoded) is a link to track: http(s), not one of ours, and free of anything
// that could break out of an attribute or a Location header later.
bool IsTrackableUrl(std::string_view url, std::string_view public_url) {
  if (!StartsWithNoCase(url, "http://") && !StartsWithNoCase(url, "https://")) return false;
  if (url.size() > kMaxTrackedUrlBytes) return false;
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '\\' ||
        c == '`') {
      return false;
    }
  }
  const std::string ours_u = std::string(public_url) + "/u/";
  const std::string ours_t = std::string(public_url) + "/t/";
  return !StartsWithNoCase(url, ours_u) && !StartsWithNoCase(url, ours_t);
}

// One start tag: where it ends and where its first href value lies.
struct StartTag {
  std::string_view name;
  size_t end = 0;  // one past '>'
  bool has_href = false;
  size_t href_begin = 0;  // the value including any quotes
  size_t href_end = 0;
  bool href_quoted = false;
};

// Parses the start tag at html[lt] ('<' then a letter), attribute values quote-aware as HTML5
// tokenizes them. nullopt when the tag never closes.
std::optional<StartTag> ParseStartTag(std::string_view html, size_t lt) {
  StartTag tag;
  size_t i = lt + 1;
  const size_t n = html.size();
  while (i < n && !IsHtmlSpace(html[i]) && html[i] != '/' && html[i] != '>') ++i;
  tag.name = html.substr(lt + 1, i - lt - 1);
  while (true) {
    while (i < n && IsHtmlSpace(html[i])) ++i;
    if (i >= n) return std::nullopt;
    if (html[i] == '>') {
      tag.end = i + 1;
      return tag;
    }
    if (html[i] == '/' || html[i] == '=') {
      ++i;
      continue;
    }
    const size_t name_begin = i;
    while (i < n && !IsHtmlSpace(html[i]) && html[i] != '/' && html[i] != '>' && html[i] != '=') {
      ++i;
    }
    const std::string_view name = html.substr(name_begin, i - name_begin);
    size_t j = i;
    while (j < n && IsHtmlSpace(html[j])) ++j;
    if (j >= n || html[j] != '=') continue;  // attribute without a value
    i = j + 1;
    while (i < n && IsHtmlSpace(html[i])) ++i;
    if (i >= n) return std::nullopt;
    const size_t value_begin = i;
    bool quoted = false;
    if (html[i] == '"' || html[i] == '\'') {
      const size_t close = html.find(html[i], i + 1);
      if (close == std::string_view::npos) return std::nullopt;
      i = close + 1;
      quoted = true;
    } else {
      while (i < n && !IsHtmlSpace(html[i]) && html[i] != '>') ++i;
    }
    if (!tag.has_href && name.size() == 4 && StartsWithNoCase(name, "href")) {
      tag.has_href = true;
      tag.href_begin = value_begin;
      tag.href_end = i;
      tag.href_quoted = quoted;
    }
  }
}

size_t FindLastNoCase(std::string_view text, std::string_view needle) {
  if (text.size() < needle.size()) return std::string_view::npos;
  for (size_t i = text.size() - needle.size() + 1; i-- > 0;) {
    if (StartsWithNoCase(text.substr(i), needle)) return i;
  }
  return std::string_view::npos;
}

Result<std::string> TrackingUrl(std::string_view base, std::string_view path,
                                const TrackingToken& token, std::string_view secret) {
  Result<std::string> signed_token = MakeToken(token, secret);
  if (!signed_token.ok()) return signed_token.error();
  std::string url(base);
  url.append(path);
  url.append(*signed_token);
  return url;
}

}  // namespace

Result<std::string> MakeToken(const TrackingToken& token, std::string_view secret) {
  if (secret.empty()) return Error{"no_tracking_secret", "the tracking secret is empty"};
  if (token.message_id.empty() || token.message_id.size() > kMaxTrackedMessageIdBytes) {
    return Error{"invalid_tracking_token",
                 "message id must be 1 to " + std::to_string(kMaxTrackedMessageIdBytes) + " bytes"};
  }
  if (!IsKnownKind(static_cast<uint8_t>(token.kind))) {
    return Error{"invalid_tracking_token", "unknown tracking kind"};
  }
  if (token.link_index >= kMaxTrackedLinks ||
      (token.kind != TrackingKind::kClick && token.link_index != 0)) {
    return Error{"invalid_tracking_token", "link index out of range"};
  }
  std::string payload;
  payload.push_back(static_cast<char>(kTokenVersion));
  payload.push_back(static_cast<char>(token.kind));
  payload.push_back(static_cast<char>((token.link_index >> 8) & 0xff));
  payload.push_back(static_cast<char>(token.link_index & 0xff));
  payload.push_back(static_cast<char>(token.message_id.size()));
  payload.append(token.message_id);
  const std::string mac = TokenMac(payload, secret);
  if (mac.size() != kMacBytes) return Error{"crypto_failed", "HMAC-SHA256 failed"};
  return Base64UrlEncode(payload + mac);
}

std::optional<TrackingToken> VerifyToken(std::string_view token, std::string_view secret) {
  if (secret.empty() || token.empty() || token.size() > kMaxTrackingTokenChars) {
    return std::nullopt;
  }
  const std::optional<std::string> bytes = Base64UrlDecode(token);
  if (!bytes || bytes->size() < kHeaderBytes + 1 + kMacBytes) return std::nullopt;
  const std::string_view all(*bytes);
  const std::string_view payload = all.substr(0, all.size() - kMacBytes);
  const std::string expected_mac = TokenMac(payload, secret);
  if (expected_mac.size() != kMacBytes ||
      !ConstantTimeEqual(expected_mac, all.substr(payload.size()))) {
    return std::nullopt;
  }
  // Authentic from here on; still check the shape so a future format cannot be misread.
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(payload[i]); };
  if (byte(0) != kTokenVersion || !IsKnownKind(byte(1))) return std::nullopt;
  TrackingToken result;
  result.kind = static_cast<TrackingKind>(byte(1));
  result.link_index = (uint32_t{byte(2)} << 8) | byte(3);
  const size_t id_size = byte(4);
  if (id_size == 0 || id_size > kMaxTrackedMessageIdBytes ||
      payload.size() != kHeaderBytes + id_size) {
    return std::nullopt;
  }
  if (result.link_index >= kMaxTrackedLinks ||
      (result.kind != TrackingKind::kClick && result.link_index != 0)) {
    return std::nullopt;
  }
  result.message_id = std::string(payload.substr(kHeaderBytes));
  return result;
}

std::optional<TrackingToken> VerifyToken(std::string_view token, std::string_view secret,
                                         TrackingKind expected) {
  std::optional<TrackingToken> result = VerifyToken(token, secret);
  if (!result || result->kind != expected) return std::nullopt;
  return result;
}

Result<RewrittenEmail> RewriteEmail(std::string_view html, std::string_view message_id,
                                    std::string_view public_url, std::string_view secret) {
  const std::string_view base = TrimSlash(public_url);
  RewrittenEmail email;
  std::string& out = email.html;
  out.reserve(html.size() + 256);
  size_t pos = 0;
  while (pos < html.size()) {
    const size_t lt = html.find('<', pos);
    if (lt == std::string_view::npos) break;
    out.append(html.substr(pos, lt - pos));
    pos = lt;
    if (html.substr(lt).starts_with("<!--")) {
      const size_t close = html.find("-->", lt + 4);
      if (close == std::string_view::npos) break;
      out.append(html.substr(lt, close + 3 - lt));
      pos = close + 3;
      continue;
    }
    if (lt + 1 >= html.size() || !IsAsciiLetter(html[lt + 1])) {
      out.push_back('<');
      pos = lt + 1;
      continue;
    }
    const std::optional<StartTag> tag = ParseStartTag(html, lt);
    if (!tag) break;  // unterminated tag: copy the rest as it is
    pos = tag->end;
    const std::string_view whole = html.substr(lt, tag->end - lt);
    if (!tag->has_href || tag->name.size() != 1 || Lower(tag->name[0]) != 'a') {
      out.append(whole);
      continue;
    }
    std::string_view raw = html.substr(tag->href_begin, tag->href_end - tag->href_begin);
    if (tag->href_quoted) raw = raw.substr(1, raw.size() - 2);
    std::string url(TrimHtmlSpace(DecodeEntities(raw)));
    if (!IsTrackableUrl(url, base)) {
      out.append(whole);
      continue;
    }
    if (email.links.size() >= kMaxTrackedLinks) {
      return Error{"too_many_links", "an email may hold at most " +
                                         std::to_string(kMaxTrackedLinks) + " tracked links"};
    }
    TrackingToken click{TrackingKind::kClick, std::string(message_id),
                        static_cast<uint32_t>(email.links.size())};
    Result<std::string> click_url = TrackingUrl(base, "/t/c/", click, secret);
    if (!click_url.ok()) return click_url.error();
    email.links.push_back(std::move(url));
    out.append(html.substr(lt, tag->href_begin - lt));
    out.push_back('"');
    out.append(HtmlEscape(*click_url));
    out.push_back('"');
    out.append(html.substr(tag->href_end, tag->end - tag->href_end));
  }
  if (pos < html.size()) out.append(html.substr(pos));

  Result<std::string> open_url =
      TrackingUrl(base, "/t/o/", {TrackingKind::kOpen, std::string(message_id), 0}, secret);
  if (!open_url.ok()) return open_url.error();
  const std::string pixel = "<img src=\"" + HtmlEscape(*open_url) +
                            "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">";
  const size_t body_close = FindLastNoCase(out, "</body");
  if (body_close == std::string::npos) {
    out.append(pixel);
  } else {
    out.insert(body_close, pixel);
  }
  return email;
}

Result<std::string> UnsubscribeUrl(std::string_view public_url, std::string_view message_id,
                                   std::string_view secret) {
  return TrackingUrl(TrimSlash(public_url), "/u/",
                     {TrackingKind::kUnsubscribe, std::string(message_id), 0}, secret);
}

}  // namespace itinera
