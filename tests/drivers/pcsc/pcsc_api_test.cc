// The run-time loader of pcsc-lite (pcsc_api.h): on this machine it
// resolves every function and the PCI data; a missing library or symbol is
// a clear error.
#include "pcsc/pcsc_api.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

namespace portier::drivers {
namespace {

// Every member of the table, as pointers (all members are pointers).
std::array<void*, sizeof(PcscApi) / sizeof(void*)> members(const PcscApi& api) {
  static_assert(sizeof(PcscApi) % sizeof(void*) == 0);
  std::array<void*, sizeof(PcscApi) / sizeof(void*)> out{};
  std::memcpy(out.data(), &api, sizeof(PcscApi));
  return out;
}

TEST(PcscApi, LoadsEveryFunctionAndThePciDataFromTheInstalledLibrary) {
  auto api = pcsc_api();
  ASSERT_TRUE(api.has_value()) << api.error().message();
  for (void* p : members(**api)) EXPECT_NE(p, nullptr);
  // The exported PCI structures, as SCARD_PCI_T0/T1/RAW would name them.
  EXPECT_EQ((*api)->g_rgSCardT0Pci->dwProtocol, static_cast<DWORD>(SCARD_PROTOCOL_T0));
  EXPECT_EQ((*api)->g_rgSCardT1Pci->dwProtocol, static_cast<DWORD>(SCARD_PROTOCOL_T1));
  EXPECT_EQ((*api)->g_rgSCardRawPci->dwProtocol, static_cast<DWORD>(SCARD_PROTOCOL_RAW));
  auto again = pcsc_api();  // loaded once
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *api);
}

TEST(PcscApi, AMissingLibraryIsAClearError) {
  auto api = load_pcsc_api("libdoesnotexist.so.0");
  ASSERT_FALSE(api.has_value());
  EXPECT_EQ(api.error().code, Errc::not_found);
  const std::string m = api.error().message();
  EXPECT_NE(m.find("libdoesnotexist.so.0"), std::string::npos) << m;
  EXPECT_NE(m.find("install libpcsclite1"), std::string::npos) << m;
  EXPECT_NE(m.find("cannot open shared object file"), std::string::npos) << m;  // dlerror()
}

TEST(PcscApi, ALibraryWithoutTheFunctionsNamesThem) {
  auto api = load_pcsc_api("libc.so.6");
  ASSERT_FALSE(api.has_value());
  EXPECT_EQ(api.error().code, Errc::not_found);
  const std::string m = api.error().message();
  EXPECT_NE(m.find("libc.so.6 lacks SCardEstablishContext, SCardReleaseContext,"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("g_rgSCardRawPci"), std::string::npos) << m;
}

}  // namespace
}  // namespace portier::drivers
