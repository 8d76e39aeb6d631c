#include "agent/envelope/offline_notice.h"

#include "agent/envelope/envelope_chain.h"
#include "common/crypto/sign.h"

namespace portier::envelope {
namespace {

crypto::Bytes offline_message(const std::string& terminal_id, std::uint64_t epoch) {
  static constexpr std::string_view kLabel = "portier/v1 offline";
  crypto::Bytes m(kLabel.begin(), kLabel.end());
  m.push_back(0);
  m.insert(m.end(), terminal_id.begin(), terminal_id.end());
  m.push_back(0);
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(epoch >> (8 * i)));
  return m;
}

}  // namespace

Result<v1::Offline> make_offline(const std::string& terminal_id, std::uint64_t session_epoch,
                                 const crypto::Signer& signer, const std::string& key_id) {
  auto sig = signer.sign(offline_message(terminal_id, session_epoch));
  if (!sig) return std::unexpected(sig.error());
  v1::Offline o;
  o.set_terminal_id(terminal_id);
  o.set_session_epoch(session_epoch);
  o.set_signature(sig->data(), sig->size());
  o.set_key_id(key_id);
  return o;
}

Result<void> verify_offline(const v1::Offline& notice, const std::string& terminal_id,
                            const crypto::PublicKey& key) {
  if (notice.terminal_id() != terminal_id) {
    return fail(Errc::permission_denied, "offline notice", "terminal",
                "names another terminal than the one it came from");
  }
  auto ok = crypto::verify(key, offline_message(terminal_id, notice.session_epoch()),
                           crypto::byte_view(notice.signature()));
  if (!ok) return with_context(ok, "offline notice");
  return {};
}

}  // namespace portier::envelope
