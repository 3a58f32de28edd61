// Delivers email into a local Maildir (for development and local journeys, no SMTP server).
//
// Each message is rendered with BuildMime, written to tmp/, fsynced, renamed atomically into
// new/, and the directory fsynced, so a reader never sees a partial file. The file name is a
// SHA-256 of the idempotency key, so a retry after a crash finds the earlier copy (in new/ or,
// once a mail reader has seen it, in cur/ with a ":2,..." suffix) and reports kSent without
// writing a second one. The directories are created on first use. Safe to use from several
// threads or processes at once: the final rename is atomic and the name is fixed per message.
#ifndef ITINERA_CONNECTORS_MAILDIR_H_
#define ITINERA_CONNECTORS_MAILDIR_H_

#include <string>
#include <string_view>

#include "connectors/connector.h"

namespace itinera::connectors {

class MaildirConnector final : public Connector {
 public:
  explicit MaildirConnector(std::string root) : root_(std::move(root)) {}

  // kSent with provider_id = the file name; kPermanent when the message cannot be rendered
  // (e.g. header injection); kTransient on file-system errors.
  Delivery Send(const Message& message) override;

  // The file name (without directory) used for this idempotency key.
  static std::string FileNameFor(std::string_view idempotency_key);

 private:
  std::string root_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_MAILDIR_H_
