#include "connectors/html_text.h"

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace itinera::connectors {
namespace {

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

constexpr std::pair<std::string_view, uint32_t> kNamedEntities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"bull", 0x2022},  {"euro", 0x20AC},  {"middot", 0xB7},  {"laquo", 0xAB},
    {"raquo", 0xBB},   {"shy", 0xAD},     {"zwnj", 0x200C},  {"deg", 0xB0},
};

// Decodes one entity starting at text[i] == '&'. On success appends and advances i.
bool DecodeEntityAt(std::string_view text, size_t& i, std::string& out) {
  size_t semi = text.find(';', i + 1);
  if (semi == std::string_view::npos || semi - i > 12) return false;
  std::string_view name = text.substr(i + 1, semi - i - 1);
  if (name.empty()) return false;
  uint32_t cp = 0;
  if (name[0] == '#') {
    bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
    std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty()) return false;
    for (char c : digits) {
      int v;
      if (c >= '0' && c <= '9') {
        v = c - '0';
      } else if (hex && std::isxdigit(static_cast<unsigned char>(c))) {
        v = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
      } else {
        return false;
      }
      cp = cp * (hex ? 16 : 10) + v;
      if (cp > 0x10FFFF) cp = 0x110000;  // clamp; AppendUtf8 turns it into U+FFFD
    }
  } else {
    bool found = false;
    for (const auto& [n, v] : kNamedEntities) {
      if (n == name) {
        cp = v;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  AppendUtf8(cp, out);
  i = semi + 1;
  return true;
}

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Builds text with browser-like whitespace: runs collapse to one space, explicit breaks count.
class TextWriter {
 public:
  explicit TextWriter(size_t capacity) { out_.reserve(capacity); }
  void Text(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
      if (IsSpace(s[i])) {
        space_ = true;
        ++i;
        continue;
      }
      // A word: its first character settles the pending break or space, the rest follow as is.
      size_t end = i + 1;
      while (end < s.size() && !IsSpace(s[end])) ++end;
      Put(s[i]);
      out_.append(s.data() + i + 1, end - i - 1);
      i = end;
    }
  }
  // Appends text whose spaces are significant (already decoded &nbsp;).
  void Literal(char c) { Put(c); }
  void LineBreak() {
    if (!out_.empty()) breaks_ = breaks_ >= 2 ? 2 : breaks_ + 1;
    space_ = false;
  }
  void Paragraph() {
    if (!out_.empty()) breaks_ = 2;
    space_ = false;
  }
  std::string Finish() { return std::move(out_); }
  // The text written since `mark` (for comparing link text with its URL).
  size_t Mark() const { return out_.size(); }
  std::string Since(size_t mark) const { return out_.substr(mark); }

 private:
  void Put(char c) {
    if (breaks_ > 0) {
      out_.append(breaks_, '\n');
      breaks_ = 0;
    } else if (space_ && !out_.empty() && out_.back() != ' ') {
      out_ += ' ';
    }
    space_ = false;
    out_ += c;
  }
  std::string out_;
  int breaks_ = 0;
  bool space_ = false;
};

// Value of attribute `want` in the inside of a tag ("a href='x' class=y"), entity-decoded.
std::string Attribute(std::string_view tag, std::string_view want) {
  size_t i = 0;
  while (i < tag.size() && !std::isspace(static_cast<unsigned char>(tag[i]))) ++i;  // tag name
  while (i < tag.size()) {
    while (i < tag.size() && (std::isspace(static_cast<unsigned char>(tag[i])) || tag[i] == '/'))
      ++i;
    size_t name_start = i;
    while (i < tag.size() && tag[i] != '=' && !std::isspace(static_cast<unsigned char>(tag[i])) &&
           tag[i] != '/')
      ++i;
    std::string name = Lower(tag.substr(name_start, i - name_start));
    while (i < tag.size() && std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
    std::string_view value;
    if (i < tag.size() && tag[i] == '=') {
      ++i;
      while (i < tag.size() && std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
      if (i < tag.size() && (tag[i] == '"' || tag[i] == '\'')) {
        char q = tag[i++];
        size_t end = tag.find(q, i);
        if (end == std::string_view::npos) end = tag.size();
        value = tag.substr(i, end - i);
        i = end + 1;
      } else {
        size_t start = i;
        while (i < tag.size() && !std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
        value = tag.substr(start, i - start);
      }
    }
    if (name.empty()) {
      ++i;
      continue;
    }
    if (name == want) return DecodeHtmlEntities(value);
  }
  return "";
}

bool IsBlock(std::string_view name) {
  static constexpr std::string_view kBlocks[] = {
      "p",     "div", "h1", "h2",         "h3",  "h4",      "h5",      "h6",     "ul",     "ol",
      "table", "tr",  "hr", "blockquote", "pre", "section", "article", "header", "footer", "center",
      "dl",    "dt",  "dd", "address",    "nav", "main",    "aside",   "figure", "tbody"};
  for (auto b : kBlocks) {
    if (b == name) return true;
  }
  return false;
}

}  // namespace

std::string DecodeHtmlEntities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '&' && DecodeEntityAt(text, i, out)) continue;
    out += text[i++];
  }
  return out;
}

std::string HtmlToText(std::string_view html) {
  TextWriter w(html.size());  // the text is rarely longer than its markup
  std::string href;           // of the open <a>, if any
  size_t link_mark = 0;
  bool in_link = false;
  for (size_t i = 0; i < html.size();) {
    char c = html[i];
    if (c == '<') {
      if (html.substr(i, 4) == "<!--") {
        size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? html.size() : end + 3;
        continue;
      }
      size_t end = html.find('>', i + 1);
      if (end == std::string_view::npos) break;  // truncated tag: drop the rest
      std::string_view inside = html.substr(i + 1, end - i - 1);
      i = end + 1;
      bool closing = !inside.empty() && inside[0] == '/';
      std::string_view rest = closing ? inside.substr(1) : inside;
      size_t n = 0;
      while (n < rest.size() &&
             (std::isalnum(static_cast<unsigned char>(rest[n])) || rest[n] == '!'))
        ++n;
      std::string name = Lower(rest.substr(0, n));
      if (!closing && (name == "script" || name == "style" || name == "head" || name == "title")) {
        std::string close = "</" + name;
        size_t pos = i;
        while (true) {
          pos = html.find('<', pos);
          if (pos == std::string_view::npos) break;
          if (Lower(html.substr(pos, close.size())) == close) break;
          ++pos;
        }
        if (pos == std::string_view::npos) {
          i = html.size();
        } else {
          size_t gt = html.find('>', pos);
          i = gt == std::string_view::npos ? html.size() : gt + 1;
        }
        continue;
      }
      if (name == "br") {
        w.LineBreak();
      } else if (name == "li") {
        if (!closing) {
          w.LineBreak();
          w.Literal('-');
          w.Literal(' ');
        }
      } else if (name == "td" || name == "th") {
        if (!closing) w.Text(" ");
      } else if (name == "img" && !closing) {
        std::string alt = Attribute(inside, "alt");
        if (!alt.empty()) w.Text(" " + alt + " ");
      } else if (name == "a") {
        if (!closing) {
          href = Attribute(inside, "href");
          in_link = true;
          link_mark = w.Mark();
        } else if (in_link) {
          in_link = false;
          std::string shown = w.Since(link_mark);
          std::string target = href;
          if (target.rfind("mailto:", 0) == 0) target = target.substr(7);
          bool useful = !href.empty() && href[0] != '#' && href.rfind("javascript:", 0) != 0;
          if (useful && shown != target && shown != href) {
            if (shown.empty()) {
              w.Text(href);
            } else {
              w.Text(" (" + href + ")");
            }
          }
        }
      } else if (IsBlock(name)) {
        w.Paragraph();
      }
      continue;
    }
    if (c == '&') {
      std::string decoded;
      if (DecodeEntityAt(html, i, decoded)) {
        if (decoded == "\xC2\xA0") {
          w.Literal(' ');
        } else {
          w.Text(decoded);
        }
        continue;
      }
    }
    // Two memchr calls (find_first_of("<&") would run one per character).
    size_t next = html.find('<', i + 1);
    if (next == std::string_view::npos) next = html.size();
    const size_t amp = html.substr(0, next).find('&', i + 1);
    if (amp != std::string_view::npos) next = amp;
    w.Text(html.substr(i, next - i));
    i = next;
  }
  return w.Finish();
}

}  // namespace itinera::connectors
