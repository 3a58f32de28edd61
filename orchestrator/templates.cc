#include "orchestrator/templates.h"

#include <fstream>
#include <kainjow/mustache.hpp>
#include <sstream>

namespace itinera::orch {

namespace mustache = kainjow::mustache;

// One template file, read and compiled once. `error` is set when it is missing or malformed.
struct TemplateSet::Compiled {
  std::string path;
  std::optional<std::string> error;
  std::unique_ptr<mustache::mustache> subject;  // email only
  std::unique_ptr<mustache::mustache> body;
};

namespace {

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Splits "---\nkey: value\n---\nbody" into front-matter keys and the body. Returns false when
// the text does not start with front matter or the closing "---" is missing.
bool SplitFrontMatter(const std::string& text, std::map<std::string, std::string>& keys,
                      std::string& body, std::string& problem) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || Trim(line) != "---") {
    problem =
        "an email template must start with front matter: a line \"---\", "
        "\"subject: ...\", and another \"---\"";
    return false;
  }
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (Trim(line) == "---") {
      std::ostringstream rest;
      rest << in.rdbuf();
      body = rest.str();
      if (!keys.count("subject")) {
        problem = "the front matter has no \"subject:\" line";
        return false;
      }
      return true;
    }
    if (Trim(line).empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) {
      problem = "line " + std::to_string(line_no) + ": expected \"key: value\" in the front matter";
      return false;
    }
    keys[Trim(line.substr(0, colon))] = Trim(line.substr(colon + 1));
  }
  problem = "the front matter is not closed: add a line \"---\" after \"subject: ...\"";
  return false;
}

mustache::data ToMustache(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object: {
      mustache::data d{mustache::data::type::object};
      for (const auto& [k, item] : v.items()) d.set(k, ToMustache(item));
      return d;
    }
    case nlohmann::json::value_t::array: {
      mustache::data d{mustache::data::type::list};
      for (const auto& item : v) d.push_back(ToMustache(item));
      return d;
    }
    case nlohmann::json::value_t::string:
      return mustache::data{v.get<std::string>()};
    case nlohmann::json::value_t::boolean:
      return mustache::data{v.get<bool>()};
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return mustache::data{false};
    default:
      return mustache::data{v.dump()};  // numbers as written
  }
}

std::string Identity(const std::string& s) { return s; }

}  // namespace

TemplateSet::TemplateSet(std::string folder) : folder_(std::move(folder)) {}
TemplateSet::~TemplateSet() = default;

std::string TemplateSet::PathOf(std::string_view channel, std::string_view name) const {
  std::string path = folder_;
  if (!path.empty() && path.back() != '/') path += '/';
  path.append(name).append(".").append(channel).append(".mustache");
  return path;
}

const TemplateSet::Compiled& TemplateSet::Load(std::string_view channel, std::string_view name) {
  std::string key = std::string(name) + "." + std::string(channel);
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;

  auto c = std::make_unique<Compiled>();
  c->path = PathOf(channel, name);
  std::ifstream file(c->path, std::ios::binary);
  if (channel != "email" && channel != "sms" && channel != "alert") {
    c->error = "there are no templates for channel \"" + std::string(channel) + "\"";
  } else if (!file) {
    c->error = "no " + std::string(channel) + " template \"" + std::string(name) +
               "\": expected the file " + c->path;
  } else {
    std::ostringstream text;
    text << file.rdbuf();
    std::string body = text.str();
    if (channel == "email") {
      std::map<std::string, std::string> keys;
      std::string problem;
      if (!SplitFrontMatter(text.str(), keys, body, problem)) {
        c->error = c->path + ": " + problem;
      } else {
        c->subject = std::make_unique<mustache::mustache>(keys["subject"]);
        c->subject->set_custom_escape(Identity);  // a header, not HTML
        if (!c->subject->is_valid()) {
          c->error = c->path + ": subject: " + c->subject->error_message();
        }
      }
    }
    if (!c->error) {
      c->body = std::make_unique<mustache::mustache>(body);
      if (!c->body->is_valid()) {
        c->error = c->path + ": " + c->body->error_message();
      } else if (channel != "email") {
        c->body->set_custom_escape(Identity);  // SMS and alerts are plain text
      }
    }
  }
  return *cache_.emplace(key, std::move(c)).first->second;
}

std::optional<std::string> TemplateSet::Problem(std::string_view channel, std::string_view name) {
  return Load(channel, name).error;
}

Result<RenderedMessage> TemplateSet::Render(std::string_view channel, std::string_view name,
                                            const nlohmann::json& data) {
  const Compiled& c = Load(channel, name);
  if (c.error) return Error{"template", *c.error};
  mustache::data model = ToMustache(data);
  RenderedMessage out;
  if (c.subject) {
    // A subject is a header: a line break from customer data must not start a new header.
    out.subject = c.subject->render(model);
    for (char& ch : out.subject)
      if (ch == '\r' || ch == '\n') ch = ' ';
    out.subject = Trim(out.subject);
  }
  out.body = c.body->render(model);
  return out;
}

}  // namespace itinera::orch
