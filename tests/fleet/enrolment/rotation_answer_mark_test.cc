// Which answers to a rotation tell the terminal "nothing was recorded"
// (review finding REQ-33/2): it used to take every PERMISSION_DENIED,
// INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND or ALREADY_EXISTS as
// that, and destroy its pending key; but some of those are fleet-side
// failures that judge nothing (the CA anchor check after a CA rollover, a
// registry error), so a rotation the fleet had recorded was dropped and the
// terminal locked out. The fleet now marks a definitive refusal
// (agent/identity/rotation_answer.h: trailing metadata, only where it read
// its registry and the pending key is not there); the terminal takes only
// that mark as "not recorded", every other answer as unknown.
#include <gtest/gtest.h>

#include "agent/identity/rotation_answer.h"
#include "enrolment/enrolment_fixture.h"

namespace portier::test {
namespace {

using identity::RotationOutcome;

class RotationAnswerMarkTest : public EnrolmentFixture {};

// The fleet's CA rolled over after it recorded the rotation (its answer
// was lost): the retry, still under the old certificate, fails the anchor
// check. That judges nothing of the rotation: unknown, the pending key is
// kept, and once the fleet answers again the terminal gets what it
// recorded.
TEST_F(RotationAnswerMarkTest,
       ARecordedRotationIsNotDroppedOnAnAnchorFailureAfterACaRollover_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto req = rotation_request(*t.identity, 4);
  auto lost = service_->renew(old_cert_pem, req);  // the answer never reaches the terminal
  ASSERT_TRUE(lost) << lost.error().message();

  std::filesystem::create_directories(dir_ + "/rollover");
  auto pki2 = TestPki::create(dir_ + "/rollover");
  ASSERT_TRUE(pki2) << pki2.error().message();
  auto ca2 = fleet::FleetCa::load(pki2->intermediate_path(), dir_ + "/rollover/intermediate.key");
  ASSERT_TRUE(ca2) << ca2.error().message();
  fleet::EnrolmentService rolled(*ca2, *registry_);
  bool marked = true;
  auto direct = rolled.renew(old_cert_pem, req, &marked);
  ASSERT_FALSE(direct);
  EXPECT_EQ(direct.error().code, Errc::permission_denied) << direct.error().message();
  EXPECT_FALSE(marked) << "the anchor check judges nothing of the rotation";

  start_server(rolled);
  auto a = client(t).rotate_once(*t.identity, 4);
  EXPECT_EQ(a.outcome, RotationOutcome::unknown) << (a.error ? a.error->message() : "");
  ASSERT_TRUE(a.error);
  EXPECT_EQ(a.error->code, Errc::permission_denied) << a.error->message();
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);
  ASSERT_TRUE(t.identity->pending_key()) << "the pending key is kept";

  start_server(*service_);
  a = client(t).rotate_once(*t.identity, 4);
  ASSERT_EQ(a.outcome, RotationOutcome::rotated) << (a.error ? a.error->message() : "");
  EXPECT_EQ(*t.identity->certificate()->cert.der(),
            crypto::Bytes(lost->certificate().begin(), lost->certificate().end()));
}

// The fleet marks its refusals where it read its registry and the pending
// key is not there (not allowed, no cutover), not where the registry holds
// the pending key.
TEST_F(RotationAnswerMarkTest, OnlyARefusalWithThePendingKeyUnrecordedIsMarked_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  auto req = rotation_request(*t.identity, 6);

  bool marked = false;
  auto not_allowed = service_->renew(old_cert_pem, req, &marked);
  ASSERT_FALSE(not_allowed);
  EXPECT_TRUE(marked) << not_allowed.error().message();

  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto no_cutover = req;
  no_cutover.set_cutover_sequence(0);
  marked = false;
  auto r = service_->renew(old_cert_pem, no_cutover, &marked);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_TRUE(marked) << r.error().message();

  // Recorded, then a request the registry refuses for its CSR's subject
  // while it holds that CSR's key: not marked.
  ASSERT_TRUE(service_->renew(old_cert_pem, req));
  auto csr = crypto::CertificateRequest::from_der(crypto::byte_view(req.csr()));
  ASSERT_TRUE(csr);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  ASSERT_EQ((*rec)->public_key_pem, *csr->public_key()->to_pem());
  v1::RenewCertificateRequest garbled = req;
  garbled.set_csr("not a CSR");
  marked = true;
  auto g = service_->renew(old_cert_pem, garbled, &marked);
  ASSERT_FALSE(g);
  EXPECT_FALSE(marked) << "the CSR names no key: the fleet cannot say";
}

// A fleet (or anything on its address) that answers a rotation with a
// refusal code but without the mark: unknown; with it: not recorded.
class RefusingEnrolment final : public v1::Enrolment::Service {
 public:
  grpc::StatusCode code = grpc::StatusCode::PERMISSION_DENIED;
  bool mark = false;
  grpc::Status Renew(grpc::ServerContext* ctx, const v1::RenewCertificateRequest*,
                     v1::EnrollResponse*) override {
    if (mark) ctx->AddTrailingMetadata(identity::kRotationAnswerKey, identity::kNotRecorded);
    return grpc::Status(code, "refused");
  }
};

TEST_F(RotationAnswerMarkTest, TheTerminalDropsItsPendingKeyOnlyOnTheFleetsMark_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  RefusingEnrolment refusing;
  start_server(refusing);
  for (auto code : {grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::INVALID_ARGUMENT,
                    grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::NOT_FOUND,
                    grpc::StatusCode::ALREADY_EXISTS}) {
    refusing.code = code;
    auto a = client(t).rotate_once(*t.identity, 3);
    EXPECT_EQ(a.outcome, RotationOutcome::unknown) << "code " << static_cast<int>(code);
    EXPECT_TRUE(t.identity->pending_key());
  }
  refusing.code = grpc::StatusCode::PERMISSION_DENIED;
  refusing.mark = true;
  auto a = client(t).rotate_once(*t.identity, 3);
  EXPECT_EQ(a.outcome, RotationOutcome::not_recorded) << "the fleet's mark";
}

}  // namespace
}  // namespace portier::test
