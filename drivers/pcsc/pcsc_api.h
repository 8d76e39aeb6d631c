// pcsc-lite, loaded when a PC/SC driver is started: portierd maps
// libpcsclite only on terminals whose config has a card reader driver, not
// at start.
#pragma once

#include <winscard.h>

#include <string>

#include "common/result.h"

namespace portier::drivers {

// The pcsc-lite functions (and the exported PCI data that SCARD_PCI_T0/T1/RAW
// name) the PC/SC driver uses, by their own names.
struct PcscApi {
  decltype(&::SCardEstablishContext) SCardEstablishContext;
  decltype(&::SCardReleaseContext) SCardReleaseContext;
  decltype(&::SCardConnect) SCardConnect;
  decltype(&::SCardReconnect) SCardReconnect;
  decltype(&::SCardDisconnect) SCardDisconnect;
  decltype(&::SCardBeginTransaction) SCardBeginTransaction;
  decltype(&::SCardEndTransaction) SCardEndTransaction;
  decltype(&::SCardStatus) SCardStatus;
  decltype(&::SCardGetStatusChange) SCardGetStatusChange;
  decltype(&::SCardTransmit) SCardTransmit;
  decltype(&::SCardListReaders) SCardListReaders;
  decltype(&::SCardCancel) SCardCancel;
  const SCARD_IO_REQUEST* g_rgSCardT0Pci;   // SCARD_PCI_T0
  const SCARD_IO_REQUEST* g_rgSCardT1Pci;   // SCARD_PCI_T1
  const SCARD_IO_REQUEST* g_rgSCardRawPci;  // SCARD_PCI_RAW
};

// The soname of Debian 12's libpcsclite1.
inline constexpr char kPcscLibrary[] = "libpcsclite.so.1";

// Loads kPcscLibrary once (thread-safe) and keeps it loaded. not_found with
// the loader's reason and the package to install when it is missing, or
// naming the symbols it lacks.
Result<const PcscApi*> pcsc_api();

// Loads `soname` (dlopen, RTLD_NOW | RTLD_LOCAL) and resolves the table;
// pcsc_api() is this once with kPcscLibrary. Tests pass other names.
Result<PcscApi> load_pcsc_api(const std::string& soname);

// The loaded table; only where pcsc_api() has succeeded (the driver checks
// it in start() and self_test()).
inline const PcscApi& pcsc() { return **pcsc_api(); }

}  // namespace portier::drivers
