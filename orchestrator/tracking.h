// Signed tracking tokens and the email rewriting that plants them.
//
// A token names one message and what happened to it: an open (the pixel), a click on the n-th
// link, or an unsubscribe. It is base64url of a small binary payload followed by the first 16
// bytes (128 bits) of HMAC-SHA256 over that payload under the tracking secret. The HTTP server
// (later) calls VerifyToken with the kind its path serves; anything forged, altered, truncated,
// oversize, signed with another secret or of another kind is rejected, and the server answers 404
// without recording an event. A click token carries only an index: the redirect target is
// RewrittenEmail::links[index] as stored for that message, so a token can never redirect
// elsewhere.
//
// Pure functions with no I/O; thread-safe. An empty secret is a configuration error: MakeToken
// refuses it and VerifyToken accepts nothing under it.
#ifndef ITINERA_ORCHESTRATOR_TRACKING_H_
#define ITINERA_ORCHESTRATOR_TRACKING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace itinera {

enum class TrackingKind : uint8_t { kOpen = 1, kClick = 2, kUnsubscribe = 3 };

struct TrackingToken {
  TrackingKind kind = TrackingKind::kOpen;
  std::string message_id;
  uint32_t link_index = 0;  // index into the message's stored links; always 0 unless kClick

  bool operator==(const TrackingToken&) const = default;
};

inline constexpr size_t kMaxTrackedMessageIdBytes = 128;
inline constexpr size_t kMaxTrackedLinks = 1000;
// Longer input is rejected before any decoding; real tokens are at most 202 characters.
inline constexpr size_t kMaxTrackingTokenChars = 256;

// The signed token for `token`. Errors: "invalid_tracking_token" when the message id is empty or
// longer than kMaxTrackedMessageIdBytes, or the link index is out of range (or non-zero for a
// kind other than kClick); "no_tracking_secret" when `secret` is empty.
Result<std::string> MakeToken(const TrackingToken& token, std::string_view secret);

// The token's contents if it was made by MakeToken with `secret` and not altered in any way;
// otherwise nullopt. MACs are compared in constant time.
std::optional<TrackingToken> VerifyToken(std::string_view token, std::string_view secret);

// As above, and also nullopt unless the token is of kind `expected` (the kind the path serves).
std::optional<TrackingToken> VerifyToken(std::string_view token, std::string_view secret,
                                         TrackingKind expected);

struct RewrittenEmail {
  std::string html;                // the email to send
  std::vector<std::string> links;  // original URLs, entity-decoded; a click token's index names one
};

// Rewrites an email body for tracking:
//  - the href of every <a> tag whose URL is http(s) becomes "<public_url>/t/c/<token>", the
//    token naming `message_id` and the URL's index in `links` (one entry per rewritten link, in
//    document order, duplicates included). Attribute names match case-insensitively; values may
//    be double-, single- or un-quoted; entities in them (&amp;, &#38;, ...) are decoded before
//    the URL is stored. Left untouched: mailto:, tel:, #anchors, javascript: and any other
//    scheme, template placeholders such as {{links.unsubscribe}}, links already under
//    "<public_url>/u/" or "<public_url>/t/", and URLs holding quotes, angle brackets, whitespace
//    or control characters. Tags inside <!-- comments --> are not touched.
//  - an open pixel <img src="<public_url>/t/o/<token>" width="1" height="1" alt=""
//    style="display:none"> is inserted before the last </body>, or appended when there is none.
// Attribute values written are HTML-escaped. A trailing '/' on `public_url` is ignored.
// Errors: as MakeToken, or "too_many_links" past kMaxTrackedLinks.
Result<RewrittenEmail> RewriteEmail(std::string_view html, std::string_view message_id,
                                    std::string_view public_url, std::string_view secret);

// "<public_url>/u/<token>": the one-click unsubscribe link (RFC 8058) for `message_id`, used both
// in the body and in the List-Unsubscribe header. Errors: as MakeToken.
Result<std::string> UnsubscribeUrl(std::string_view public_url, std::string_view message_id,
                                   std::string_view secret);

}  // namespace itinera

#endif  // ITINERA_ORCHESTRATOR_TRACKING_H_
