// Message templates: templates/<name>.<channel>.mustache, rendered with kainjow Mustache.
//
// Channels are "email", "sms" and "alert". An email template starts with front matter holding
// at least `subject:` (itself a Mustache template); its body is HTML, and {{x}} is HTML-escaped.
// SMS and alert text is not escaped. A TemplateSet reads and compiles each file once, on first
// use, and keeps it; it is not thread-safe while loading (load once, then share read-only by
// calling Preload).
#ifndef ITINERA_ORCHESTRATOR_TEMPLATES_H_
#define ITINERA_ORCHESTRATOR_TEMPLATES_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace itinera::orch {

struct RenderedMessage {
  std::string subject;  // email only
  std::string body;     // HTML for email, plain text otherwise
};

class TemplateSet {
 public:
  // `folder` is read lazily; it need not exist until a template is asked for.
  explicit TemplateSet(std::string folder);
  ~TemplateSet();
  TemplateSet(const TemplateSet&) = delete;
  TemplateSet& operator=(const TemplateSet&) = delete;

  const std::string& folder() const { return folder_; }

  // The file a template lives in: "<folder>/<name>.<channel>.mustache".
  std::string PathOf(std::string_view channel, std::string_view name) const;

  // nullopt when the template exists and compiles; otherwise what is wrong, in words.
  std::optional<std::string> Problem(std::string_view channel, std::string_view name);

  // Renders with `data` (the model of DSL.md: customer, entry, event, owner, journey, links).
  Result<RenderedMessage> Render(std::string_view channel, std::string_view name,
                                 const nlohmann::json& data);

 private:
  struct Compiled;
  const Compiled& Load(std::string_view channel, std::string_view name);

  std::string folder_;
  std::map<std::string, std::unique_ptr<Compiled>> cache_;  // key: "<name>.<channel>"
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_TEMPLATES_H_
