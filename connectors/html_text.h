// Plain-text alternative for an HTML email body.
//
// HtmlToText is a forgiving, allocation-only converter (no HTML library): it drops tags,
// comments and the content of <head>, <script> and <style>; renders links as "text (url)";
// decodes character entities; collapses whitespace like a browser; and keeps structure as
// line breaks (<br>) and blank lines between blocks (<p>, <div>, headings, lists, tables).
// Pure function, thread-safe.
#ifndef ITINERA_CONNECTORS_HTML_TEXT_H_
#define ITINERA_CONNECTORS_HTML_TEXT_H_

#include <string>
#include <string_view>

namespace itinera::connectors {

// Returns UTF-8 text with '\n' line endings and no trailing newline.
std::string HtmlToText(std::string_view html);

// Decodes &amp;, &#233;, &#xE9; and the common named entities; unknown ones stay as written.
std::string DecodeHtmlEntities(std::string_view text);

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_HTML_TEXT_H_
