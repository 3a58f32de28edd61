#include "orchestrator/templates.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace itinera::orch {
namespace {

namespace fs = std::filesystem;

class TemplatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("itinera-templates-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file) << text;
  }
  fs::path dir_;
};

TEST_F(TemplatesTest, RendersEmailWithSubjectAndEscapedHtml) {
  Write("welcome.email.mustache",
        "---\nsubject: Hello {{customer.first_name}}\n---\n<p>Hi {{customer.first_name}}, "
        "{{owner.name}} will call.</p>\n");
  TemplateSet t(dir_.string());
  EXPECT_EQ(t.Problem("email", "welcome"), std::nullopt);
  nlohmann::json data = {{"customer", {{"first_name", "Tom & <Jerry>"}}},
                         {"owner", {{"name", "Anna"}}}};
  auto r = t.Render("email", "welcome", data);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->subject, "Hello Tom & <Jerry>");
  EXPECT_EQ(r->body, "<p>Hi Tom &amp; &lt;Jerry&gt;, Anna will call.</p>\n");
}

TEST_F(TemplatesTest, SmsIsNotHtmlEscaped) {
  Write("nudge.sms.mustache", "Hi {{customer.first_name}} & co, {{entry.count}} items");
  TemplateSet t(dir_.string());
  auto r =
      t.Render("sms", "nudge", {{"customer", {{"first_name", "A<b>"}}}, {"entry", {{"count", 3}}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "Hi A<b> & co, 3 items");
}

TEST_F(TemplatesTest, SectionsOverListsAndMissingValues) {
  Write("cart.sms.mustache",
        "{{#entry.items}}[{{name}}]{{/entry.items}}{{^customer.phone}}no phone{{/customer.phone}}");
  TemplateSet t(dir_.string());
  auto r = t.Render("sms", "cart",
                    {{"customer", {{"phone", nullptr}}},
                     {"entry", {{"items", {{{"name", "tyres"}}, {{"name", "wipers"}}}}}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "[tyres][wipers]no phone");
}

TEST_F(TemplatesTest, SubjectLineBreaksFromDataCannotInjectHeaders) {
  Write("x.email.mustache", "---\nsubject: Hi {{customer.name}}\n---\nbody");
  TemplateSet t(dir_.string());
  auto r = t.Render("email", "x", {{"customer", {{"name", "a\r\nBcc: evil@example.com"}}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->subject.find('\n'), std::string::npos);
  EXPECT_EQ(r->subject.find('\r'), std::string::npos);
}

TEST_F(TemplatesTest, MissingTemplateIsAProblem) {
  TemplateSet t(dir_.string());
  auto p = t.Problem("email", "nope");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "no email template \"nope\": expected the file " +
                    (dir_ / "nope.email.mustache").string());
  EXPECT_FALSE(t.Render("email", "nope", {}).ok());
}

TEST_F(TemplatesTest, EmailWithoutFrontMatterIsAProblem) {
  Write("bare.email.mustache", "<p>no subject</p>");
  TemplateSet t(dir_.string());
  auto p = t.Problem("email", "bare");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("must start with front matter"), std::string::npos);
}

TEST_F(TemplatesTest, FrontMatterWithoutSubjectIsAProblem) {
  Write("nosub.email.mustache", "---\nfrom: x\n---\nbody");
  TemplateSet t(dir_.string());
  auto p = t.Problem("email", "nosub");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("no \"subject:\" line"), std::string::npos);
}

TEST_F(TemplatesTest, UnclosedSectionIsAProblem) {
  Write("broken.sms.mustache", "Hi {{#customer.vip}}VIP");
  TemplateSet t(dir_.string());
  auto p = t.Problem("sms", "broken");
  ASSERT_TRUE(p);
  EXPECT_NE(p->find("broken.sms.mustache"), std::string::npos);
  EXPECT_NE(p->find("Unclosed section"), std::string::npos) << *p;
}

}  // namespace
}  // namespace itinera::orch
