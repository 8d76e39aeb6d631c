// The enrolment registry in its own small SQLite file (WAL, one connection
// behind a mutex): separate from the fleet's main store, which has its own
// interface. Two tables: expected devices, and refused attempts.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/sqlite/database.h"
#include "tools/fleet/enrolment/enrolment_registry.h"

namespace portier::fleet {

class SqliteEnrolmentRegistry final : public EnrolmentRegistry {
 public:
  static Result<std::unique_ptr<SqliteEnrolmentRegistry>> open(const std::string& path);
  ~SqliteEnrolmentRegistry() override;

  Result<void> expect(const std::string& serial, crypto::ByteView secret) override;
  Result<std::optional<EnrolmentRecord>> find(const std::string& serial) override;
  Result<void> bind(const std::string& serial, const std::string& terminal_id,
                    const std::string& public_key_pem, crypto::ByteView certificate) override;
  Result<void> update(const std::string& serial, const std::string& public_key_pem,
                      crypto::ByteView certificate) override;
  Result<void> replace_key(const std::string& serial, const std::string& expected_pem,
                           const std::string& public_key_pem, crypto::ByteView certificate,
                           KeyChange change, std::int64_t at_unix) override;
  Result<void> settle_rotation(const std::string& serial,
                               const std::string& public_key_pem) override;
  Result<void> allow_rotation(const std::string& terminal_id) override;
  Result<void> record_refusal(const EnrolmentRefusal& refusal) override;
  Result<std::vector<EnrolmentRefusal>> refusals(const std::string& serial) override;

 private:
  SqliteEnrolmentRegistry(sqlite::Database db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {}
  sqlite::Database db_;
  std::string path_;
  std::mutex mu_;
};

}  // namespace portier::fleet
