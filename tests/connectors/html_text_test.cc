#include "connectors/html_text.h"

#include <gtest/gtest.h>

namespace itinera::connectors {
namespace {

TEST(HtmlTextTest, DerivesReadableText) {
  struct Case {
    const char* html;
    const char* text;
  };
  const Case cases[] = {
      {"<p>Hello   <b>world</b></p>\n\n<p>Second</p>", "Hello world\n\nSecond"},
      {"Line one<br>Line two<br/><br />Line four", "Line one\nLine two\n\nLine four"},
      {"<a href=\"https://x.example/a?b=1&amp;c=2\">Book now</a>",
       "Book now (https://x.example/a?b=1&c=2)"},
      {"<a href='https://x.example'>https://x.example</a>", "https://x.example"},
      {"<a href=\"#top\">Top</a>", "Top"},
      {"<a href=\"mailto:a@b.example\">a@b.example</a>", "a@b.example"},
      {"Fish &amp; chips &lt;3 &#233;&#xE9; &euro;5 &bogus; a&nbsp;&nbsp;b",
       "Fish & chips <3 éé €5 &bogus; a  b"},
      {"<head><title>T</title><style>p{color:red}</style></head><script>x()</script>Body", "Body"},
      {"<!-- hidden -->Shown", "Shown"},
      {"<ul><li>One</li><li>Two</li></ul>After", "- One\n- Two\n\nAfter"},
      {"<img src=x alt=\"Logo\">Text", "Logo Text"},
      {"<h1>Title</h1>\n   <div>Block</div>", "Title\n\nBlock"},
      {"  \n plain\ttext  \n", "plain text"},
  };
  for (const Case& c : cases) EXPECT_EQ(HtmlToText(c.html), c.text) << c.html;
}

TEST(HtmlTextTest, SurvivesTruncatedMarkup) {
  EXPECT_EQ(HtmlToText("ok <a href=\"x"), "ok");
  EXPECT_EQ(HtmlToText("<script>never closed"), "");
  EXPECT_EQ(HtmlToText("&#99999999;"), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace itinera::connectors
