// The output of a RotateDeviceKey command whose new key was made in a
// PKCS#11 token (issue 10, item 1; proto/portier/v1/command.proto): the
// fixed first line kTokenRotationLine, a line for the operator, then the
// new key's CSR (PEM). The result travels signed by the terminal's current
// key through its chain, so the fleet may take the first line as the
// terminal's word that the key never leaves its token: only for such a
// key does `portier-fleet send T install-certificate` certify the CSR with
// no cutover (the new key takes over at its first signature). A key in a
// file rotates through Renew, and its output never starts with this line.
// Header-only: the terminal writes it, the fleet (tools/fleet) reads it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portier::management {

inline constexpr std::string_view kTokenRotationLine =
    "portier/v1 rotate-key: new key in a PKCS#11 token, CSR below";
inline constexpr std::string_view kCsrPemBegin = "-----BEGIN CERTIFICATE REQUEST-----";

inline std::string token_rotation_output(std::string_view note, std::string_view csr_pem) {
  std::string out(kTokenRotationLine);
  out += '\n';
  out += note;
  out += '\n';
  out += csr_pem;
  return out;
}

// The CSR (PEM, to the end of the output) of a token rotation's output;
// nullopt when the output is not one (another command's, or a file key's
// rotation).
inline std::optional<std::string_view> token_rotation_csr(std::string_view output) {
  if (output.size() <= kTokenRotationLine.size() ||
      output.substr(0, kTokenRotationLine.size()) != kTokenRotationLine ||
      output[kTokenRotationLine.size()] != '\n') {
    return std::nullopt;
  }
  const auto begin = output.find(kCsrPemBegin);
  if (begin == std::string_view::npos) return std::nullopt;
  return output.substr(begin);
}

}  // namespace portier::management
