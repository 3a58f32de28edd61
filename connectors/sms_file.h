// A local SMS "provider": appends one JSON line per message to a file.
//
// Line format: {"id":..., "to":..., "from":..., "body":..., "at":"2026-11-22T21:23:33Z"}, where
// body is Message::text_body and at is Message::date (RFC 3339, UTC). Sending is idempotent on
// the id within the file: the ids already present are read on first use and a repeated id is
// answered kSent without a second line. Each line is written with one append and fsynced.
// Thread-safe (internal mutex); not safe for several processes writing the same file.
#ifndef ITINERA_CONNECTORS_SMS_FILE_H_
#define ITINERA_CONNECTORS_SMS_FILE_H_

#include <mutex>
#include <string>
#include <unordered_set>

#include "connectors/connector.h"

namespace itinera::connectors {

class SmsFileConnector final : public Connector {
 public:
  explicit SmsFileConnector(std::string path) : path_(std::move(path)) {}

  // kSent (provider_id = the id); kPermanent for an empty id, recipient or body;
  // kTransient on file-system errors.
  Delivery Send(const Message& message) override;

 private:
  std::string path_;
  std::mutex mu_;
  bool loaded_ = false;
  std::unordered_set<std::string> ids_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_SMS_FILE_H_
