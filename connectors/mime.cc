#include "connectors/mime.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "connectors/html_text.h"

namespace itinera::connectors {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// Bytes that quoted-printable writes as themselves anywhere but at the end of a line: printable
// ASCII except '=', and space and tab.
constexpr std::array<bool, 256> kQpPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 33; c <= 126; ++c) plain[static_cast<size_t>(c)] = c != '=';
  plain[' '] = plain['\t'] = true;
  return plain;
}();
constexpr size_t kFoldAt = 78;
constexpr size_t kMaxLine = 998;

bool HasLineBreak(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

size_t NonAsciiBytes(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += c >= 0x80;
  return n;
}

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

Error Injection(std::string_view field) {
  return Error{"header_injection", std::string(field) + " contains CR, LF or NUL; not sent"};
}

// Length in bytes of the UTF-8 character starting with `lead` (1 for stray bytes).
size_t Utf8Length(unsigned char lead) {
  if (lead >= 0xF0 && lead < 0xF8) return 4;
  if (lead >= 0xE0) return lead < 0xF0 ? 3 : 1;
  if (lead >= 0xC0) return 2;
  return 1;
}

// RFC 2047 section 5(3): the characters that may stand for themselves in a phrase.
bool QSafe(unsigned char c) {
  return std::isalnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

std::string QEncodeChar(std::string_view ch) {
  std::string out;
  for (unsigned char c : ch) {
    if (c == ' ') {
      out += '_';
    } else if (QSafe(c)) {
      out += static_cast<char>(c);
    } else {
      out += '=';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// "Name: value" folded before whitespace so lines stay under 78 characters where possible.
Result<std::string> FoldHeader(std::string_view name, std::string_view value) {
  std::string line = std::string(name) + ": ";
  size_t protect = line.size();  // never fold right after the colon
  line += value;
  std::string out;
  size_t start = 0;
  while (line.size() - start > kFoldAt) {
    size_t limit = start + kFoldAt;
    size_t fold = std::string::npos;
    for (size_t i = limit; i > start; --i) {
      if ((line[i] == ' ' || line[i] == '\t') && i > protect) {
        fold = i;
        break;
      }
    }
    if (fold == std::string::npos) {  // no room: take the next whitespace after the limit
      for (size_t i = limit; i < line.size(); ++i) {
        if ((line[i] == ' ' || line[i] == '\t') && i > protect) {
          fold = i;
          break;
        }
      }
    }
    if (fold == std::string::npos) break;
    out.append(line, start, fold - start);
    out += "\r\n";
    start = fold;
    protect = 0;
  }
  out.append(line, start, std::string::npos);
  size_t pos = 0;
  while (pos <= out.size()) {
    size_t end = out.find("\r\n", pos);
    if (end == std::string::npos) end = out.size();
    if (end - pos > kMaxLine) {
      return Error{"header_too_long", std::string(name) + " has a line over 998 characters"};
    }
    pos = end + 2;
  }
  out += "\r\n";
  return out;
}

// An unstructured header value (Subject, extra headers): encoded words when needed.
std::string UnstructuredValue(std::string_view name, std::string_view value) {
  if (IsAscii(value) && value.find("=?") == std::string_view::npos) return std::string(value);
  return EncodeWords(value, kFoldAt - name.size() - 2);
}

bool IsAtext(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
                                std::string_view::npos;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// "Name <addr>" for the header, with the name quoted or encoded as needed.
std::string MailboxValue(std::string_view header, const Mailbox& box) {
  if (box.display_name.empty()) return box.address;
  std::string phrase;
  if (!IsAscii(box.display_name) || box.display_name.find("=?") != std::string::npos) {
    phrase = EncodeWords(box.display_name, kFoldAt - header.size() - 2);
  } else {
    bool plain = true;
    for (unsigned char c : box.display_name) {
      if (!IsAtext(c) && c != ' ') plain = false;
    }
    if (plain) {
      phrase = box.display_name;
    } else {
      phrase = "\"";
      for (char c : box.display_name) {
        if (c == '"' || c == '\\') phrase += '\\';
        phrase += c;
      }
      phrase += '"';
    }
  }
  return phrase + " <" + box.address + ">";
}

std::string DomainOf(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return "itinera.invalid";
  return Lower(address.substr(at + 1));
}

// Text in canonical form (RFC 2049): every line break as CRLF.
std::string CanonicalLineEnds(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      out += "\r\n";
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// Appends `text` quoted-printable (RFC 2045 6.7): every line break as CRLF, lines of at most 76
// characters with soft breaks, and whitespace at the end of a line encoded so no relay strips it.
void AppendQuotedPrintable(std::string& out, std::string_view text) {
  // Written through a pointer into room for the worst case: a byte takes at most 3 characters,
  // a soft break 3 more per 25 escaped bytes, a line break 2 for its 1 or 2. Appending character
  // by character cost a capacity check per byte and was a third of building the message.
  const size_t start = out.size();
  out.resize(start + 6 * text.size() + 2);
  char* const begin = out.data() + start;
  char* p = begin;
  size_t pos = 0;
  for (bool first = true;; first = false) {
    size_t end = pos;
    while (end < text.size() && text[end] != '\r' && text[end] != '\n') ++end;
    if (!first) {
      *p++ = '\r';
      *p++ = '\n';
    }
    size_t width = 0;
    for (size_t i = pos; i < end; ++i) {
      // A run of characters that stand for themselves, copied at once: up to the soft-break
      // column (width stays at most 75 here) and short of the line's last character.
      size_t run = i;
      const size_t limit = std::min(end - 1, i + (75 - width));
      while (run < limit && kQpPlain[static_cast<unsigned char>(text[run])]) ++run;
      if (run > i) {
        std::memcpy(p, text.data() + i, run - i);
        p += run - i;
        width += run - i;
        i = run - 1;
        continue;
      }
      const unsigned char c = static_cast<unsigned char>(text[i]);
      const bool last = i + 1 == end;
      const bool literal = kQpPlain[c] && !(last && (c == ' ' || c == '\t'));
      const size_t size = literal ? 1 : 3;
      // A soft break ("=") must fit in 76; the very last character of a line may use column 76.
      if (width + size > (last ? 76u : 75u)) {
        *p++ = '=';
        *p++ = '\r';
        *p++ = '\n';
        width = 0;
      }
      if (literal) {
        *p++ = static_cast<char>(c);
      } else {
        *p++ = '=';
        *p++ = kHex[c >> 4];
        *p++ = kHex[c & 15];
      }
      width += size;
    }
    if (end == text.size()) break;
    pos = end + 1;
    if (text[end] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
  }
  out.resize(start + static_cast<size_t>(p - begin));
}

// Appends a body part's headers and encoded content.
void AppendPart(std::string& out, std::string_view subtype, std::string_view body) {
  bool base64 = NonAsciiBytes(body) * 3 > body.size();
  out += "Content-Type: text/";
  out += subtype;
  out += "; charset=utf-8\r\nContent-Transfer-Encoding: ";
  out += base64 ? "base64" : "quoted-printable";
  out += "\r\n\r\n";
  if (base64) {
    out += EncodeBase64Lines(CanonicalLineEnds(body));
  } else {
    AppendQuotedPrintable(out, body);
    out += "\r\n";
  }
}

// Deterministic boundary. "=_" cannot occur in quoted-printable or base64 output.
std::string Boundary(std::string_view id) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  std::string out = "=_itinera_";
  for (int i = 60; i >= 0; i -= 4) out += kHex[(h >> i) & 15];
  return out;
}

bool IsReserved(std::string_view lower_name) {
  static constexpr std::string_view kReserved[] = {"from",
                                                   "to",
                                                   "cc",
                                                   "bcc",
                                                   "subject",
                                                   "date",
                                                   "message-id",
                                                   "mime-version",
                                                   "content-type",
                                                   "content-transfer-encoding",
                                                   "list-unsubscribe",
                                                   "list-unsubscribe-post",
                                                   "sender"};
  for (auto r : kReserved) {
    if (r == lower_name) return true;
  }
  return false;
}

}  // namespace

Result<Mailbox> ParseMailbox(std::string_view text) {
  if (HasLineBreak(text)) return Injection("address");
  Mailbox box;
  std::string_view addr = text;
  size_t lt = text.rfind('<');
  if (lt != std::string_view::npos) {
    size_t gt = text.find('>', lt);
    if (gt == std::string_view::npos || Trim(text.substr(gt + 1)) != "") {
      return Error{"invalid_address", "unbalanced <> in \"" + std::string(text) + "\""};
    }
    addr = text.substr(lt + 1, gt - lt - 1);
    std::string name = Trim(text.substr(0, lt));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      std::string unquoted;
      for (size_t i = 1; i + 1 < name.size(); ++i) {
        if (name[i] == '\\' && i + 2 < name.size()) ++i;
        unquoted += name[i];
      }
      name = unquoted;
    }
    box.display_name = name;
  }
  box.address = Trim(addr);
  size_t at = box.address.rfind('@');
  bool valid = at != std::string::npos && at > 0 && at + 1 < box.address.size();
  for (unsigned char c : box.address) {
    if (c <= ' ' || c >= 0x7F || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' ||
        c == ';' || c == '"' || c == '\\')
      valid = false;
  }
  if (!valid) return Error{"invalid_address", "not an address: \"" + std::string(text) + "\""};
  return box;
}

std::string MessageIdFor(std::string_view key, std::string_view from_address) {
  std::string out = "<";
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '+' || c == '=') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + "@" + DomainOf(from_address) + ">";
}

std::string FormatMailDate(Time t) {
  std::time_t secs = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);  // "C" locale names
  return buf;
}

std::string EncodeWords(std::string_view utf8, size_t first_budget) {
  bool use_b = NonAsciiBytes(utf8) * 3 > utf8.size();
  const std::string prefix = use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?";
  const size_t overhead = prefix.size() + 2;
  size_t budget = std::min<size_t>(75, std::max(first_budget, overhead + 12));
  std::string out;
  std::string raw;      // bytes of the current word (B)
  std::string encoded;  // payload of the current word (Q)
  auto payload_size = [&](const std::string& r, const std::string& q) {
    return use_b ? (r.size() + 2) / 3 * 4 : q.size();
  };
  auto flush = [&] {
    if (raw.empty()) return;
    if (!out.empty()) out += ' ';
    out += prefix + (use_b ? EncodeBase64(raw) : encoded) + "?=";
    raw.clear();
    encoded.clear();
    budget = 75;
  };
  for (size_t i = 0; i < utf8.size();) {
    size_t len = std::min(Utf8Length(static_cast<unsigned char>(utf8[i])), utf8.size() - i);
    std::string_view ch = utf8.substr(i, len);
    i += len;
    std::string next_raw = raw + std::string(ch);
    std::string next_q = use_b ? "" : encoded + QEncodeChar(ch);
    if (!raw.empty() && payload_size(next_raw, next_q) + overhead > budget) {
      flush();
      next_raw = std::string(ch);
      next_q = use_b ? "" : QEncodeChar(ch);
    }
    raw = std::move(next_raw);
    encoded = std::move(next_q);
  }
  flush();
  return out;
}

std::string EncodeQuotedPrintable(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  AppendQuotedPrintable(out, text);
  return out;
}

std::string EncodeBase64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                 (static_cast<unsigned char>(data[i + 1]) << 8) |
                 static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    uint32_t v = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string EncodeBase64Lines(std::string_view data) {
  std::string all = EncodeBase64(data);
  std::string out;
  for (size_t i = 0; i < all.size(); i += 76) {
    out.append(all, i, 76);
    out += "\r\n";
  }
  return out;
}

Result<std::string> BuildMime(const Message& m) {
  if (m.id.empty()) return Error{"missing_id", "message has no idempotency key"};
  if (HasLineBreak(m.id)) return Injection("id");
  if (HasLineBreak(m.from)) return Injection("From");
  if (HasLineBreak(m.to)) return Injection("To");
  if (HasLineBreak(m.subject)) return Injection("Subject");
  if (HasLineBreak(m.list_unsubscribe_url)) return Injection("List-Unsubscribe");
  for (const auto& [name, value] : m.headers) {
    if (HasLineBreak(name) || HasLineBreak(value)) return Injection("header " + name);
  }
  Result<Mailbox> from = ParseMailbox(m.from);
  if (!from.ok()) return from.error();
  Result<Mailbox> to = ParseMailbox(m.to);
  if (!to.ok()) return to.error();

  std::string out;
  // The headers, then the body about twice over (the text part and the HTML), with room for
  // the encoding's escapes and soft breaks.
  out.reserve(1024 + (m.html_body.size() + m.text_body.size()) * 5 / 2);
  auto add = [&out](std::string_view name, std::string_view value) -> Status {
    Result<std::string> line = FoldHeader(name, value);
    if (!line.ok()) return line.error();
    out += *line;
    return Status::Ok();
  };
  std::string subject_value = UnstructuredValue("Subject", m.subject);
  for (auto status :
       {add("From", MailboxValue("From", *from)), add("To", MailboxValue("To", *to)),
        add("Subject", subject_value), add("Date", FormatMailDate(m.date)),
        add("Message-ID", MessageIdFor(m.id, from->address)), add("MIME-Version", "1.0")}) {
    if (!status.ok()) return status.error();
  }
  if (!m.list_unsubscribe_url.empty()) {
    if (!IsAscii(m.list_unsubscribe_url) ||
        m.list_unsubscribe_url.find_first_of("<> ") != std::string::npos) {
      return Error{"invalid_unsubscribe",
                   "List-Unsubscribe URL must be ASCII without <> or spaces"};
    }
    if (Status s = add("List-Unsubscribe", "<" + m.list_unsubscribe_url + ">"); !s.ok()) {
      return s.error();
    }
  }
  if (m.list_unsubscribe_one_click) {
    if (m.list_unsubscribe_url.rfind("https://", 0) != 0) {
      return Error{"invalid_unsubscribe", "one-click unsubscribe needs an https:// URL (RFC 8058)"};
    }
    out += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
  }
  for (const auto& [name, value] : m.headers) {
    bool valid_name = !name.empty();
    for (unsigned char c : name) {
      if (c < 33 || c > 126 || c == ':') valid_name = false;
    }
    if (!valid_name) return Error{"invalid_header", "bad header name \"" + name + "\""};
    if (IsReserved(Lower(name))) {
      return Error{"invalid_header", name + " is set by the MIME builder, not as an extra header"};
    }
    if (Status s = add(name, UnstructuredValue(name, value)); !s.ok()) return s.error();
  }

  std::string text = m.text_body;
  if (text.empty() && !m.html_body.empty()) text = HtmlToText(m.html_body);
  if (m.html_body.empty()) {
    AppendPart(out, "plain", text);  // single part: its headers join the message's
    return out;
  }
  const std::string boundary = Boundary(m.id);
  out += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n";
  for (const auto& [subtype, body] :
       {std::pair<std::string_view, std::string_view>{"plain", text}, {"html", m.html_body}}) {
    out += "--";
    out += boundary;
    out += "\r\n";
    AppendPart(out, subtype, body);
  }
  out += "--" + boundary + "--\r\n";
  return out;
}

}  // namespace itinera::connectors
