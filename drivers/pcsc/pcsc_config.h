// Configuration of the PC/SC reader driver (contact and contactless card
// readers through pcscd). One instance serves every reader pcscd lists.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace portier::drivers {

struct PcscConfig {
  // Readers that are not pinned get the ids <id_prefix>0, <id_prefix>1, ...
  // in the order they are first seen; a reader keeps its id for the run.
  std::string id_prefix = "reader";
  // fnmatch(3) globs on reader names ("ACS ACR1252*"); a reader matching
  // none is not offered to apps. Empty: all readers. Pinned readers are
  // always offered. Names may contain '[' and ']': escape them as "\\[".
  std::vector<std::string> readers_allowed;
  // Globs of readers to treat as contactless (class "nfc") besides those
  // whose name says PICC, Contactless or NFC.
  std::vector<std::string> contactless_readers;
  // Device id -> the exact reader name (as pcscd lists it, with its " 00 00"
  // suffix) expected under that id. A pinned reader that goes away raises a
  // device_removed alarm; another reader present while it is missing raises
  // device_substituted. Pinned ids are devices from start to stop, reported
  // disconnected while their reader is absent.
  std::map<std::string, std::string> pinned;
  // The longest any one action (APDU exchange, reset) may take; a request's
  // own timeout applies when it is shorter.
  int transaction_timeout_ms = 5000;
  // How long the PC/SC transaction of the app holding a reader's lease stays
  // open after its last APDU. A multi-APDU session (SELECT, READ RECORD, ...)
  // is one transaction, so no other program's APDU lands between two of the
  // app's; the transaction ends at the lease's end (the card is reset),
  // when the card changes, or after this long without an APDU, whichever is
  // first. 0: a transaction around each APDU.
  int transaction_hold_ms = 1000;
  // The longest one wait for reader and card changes lasts (bounds how late
  // stop() can be if its wake-up is lost) and the retry interval while
  // pcscd is unreachable.
  int poll_ms = 1000;
  // Whether apps may send PC/SC reader commands (CLA FF: contactless UID,
  // MIFARE load key / authenticate, reader escapes).
  bool allow_reader_commands = true;
};

}  // namespace portier::drivers
