// RFC 5322 / MIME rendering of an email Message.
//
// BuildMime produces the exact bytes an SMTP server or a Maildir receives: CRLF line endings,
// header lines folded under 78 characters (never over 998), non-ASCII subjects and display
// names as RFC 2047 UTF-8 encoded words, bodies as quoted-printable (or base64 when mostly
// non-ASCII), and multipart/alternative (text/plain derived from the HTML when no text is
// given, then text/html). Output is deterministic: the same Message gives the same bytes, so a
// retry re-sends an identical message with the same Message-ID. Any header-bearing field that
// contains CR, LF or NUL is rejected (header injection) instead of rendered. Pure functions,
// thread-safe.
#ifndef ITINERA_CONNECTORS_MIME_H_
#define ITINERA_CONNECTORS_MIME_H_

#include <string>
#include <string_view>

#include "connectors/connector.h"
#include "util/result.h"

namespace itinera::connectors {

// "Display Name <local@domain>" or "local@domain".
struct Mailbox {
  std::string display_name;
  std::string address;
};

// Parses and validates one mailbox (ASCII address; the display name may be UTF-8).
Result<Mailbox> ParseMailbox(std::string_view text);

// "<key@domain>": the idempotency key made safe for a msg-id (characters outside
// [A-Za-z0-9_+=-] become %XX), at the domain of the sender.
std::string MessageIdFor(std::string_view idempotency_key, std::string_view from_address);

// "Sun, 22 Nov 2026 21:23:33 +0000".
std::string FormatMailDate(Time t);

// RFC 2047: the UTF-8 text as encoded words ("=?UTF-8?Q?...?=" or "?B?"), each at most 75
// characters, separated by single spaces, never splitting a UTF-8 character. `first_budget`
// limits the first word (room left on the header's first line).
std::string EncodeWords(std::string_view utf8, size_t first_budget = 75);

// Quoted-printable (RFC 2045) with CRLF hard breaks and lines of at most 76 characters.
std::string EncodeQuotedPrintable(std::string_view text);

// Base64 (RFC 4648, padded) on one line.
std::string EncodeBase64(std::string_view data);

// Base64 in lines of 76 characters, each ending in CRLF.
std::string EncodeBase64Lines(std::string_view data);

// The whole message. Errors: "header_injection", "invalid_address", "invalid_header",
// "missing_id", "invalid_unsubscribe", "header_too_long".
Result<std::string> BuildMime(const Message& message);

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_MIME_H_
