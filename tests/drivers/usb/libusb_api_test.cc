// The run-time loader of libusb-1.0 (libusb_api.h): on this machine it
// resolves every function; a missing library or symbol is a clear error.
#include "usb/libusb_api.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

namespace portier::drivers {
namespace {

// Every member of the table, as pointers (all members are pointers).
template <typename Api>
std::array<void*, sizeof(Api) / sizeof(void*)> members(const Api& api) {
  static_assert(sizeof(Api) % sizeof(void*) == 0);
  std::array<void*, sizeof(Api) / sizeof(void*)> out{};
  std::memcpy(out.data(), &api, sizeof(Api));
  return out;
}

TEST(LibusbApi, LoadsEveryFunctionFromTheInstalledLibrary) {
  auto api = libusb_api();
  ASSERT_TRUE(api.has_value()) << api.error().message();
  for (void* p : members(**api)) EXPECT_NE(p, nullptr);
  EXPECT_STREQ((*api)->libusb_error_name(LIBUSB_ERROR_BUSY), "LIBUSB_ERROR_BUSY");
  auto again = libusb_api();  // loaded once
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *api);
}

TEST(LibusbApi, AMissingLibraryIsAClearError) {
  auto api = load_libusb_api("libdoesnotexist.so.0");
  ASSERT_FALSE(api.has_value());
  EXPECT_EQ(api.error().code, Errc::not_found);
  const std::string m = api.error().message();
  EXPECT_NE(m.find("libdoesnotexist.so.0"), std::string::npos) << m;
  EXPECT_NE(m.find("install libusb-1.0-0"), std::string::npos) << m;
  EXPECT_NE(m.find("cannot open shared object file"), std::string::npos) << m;  // dlerror()
}

TEST(LibusbApi, ALibraryWithoutTheFunctionsNamesThem) {
  auto api = load_libusb_api("libc.so.6");
  ASSERT_FALSE(api.has_value());
  EXPECT_EQ(api.error().code, Errc::not_found);
  const std::string m = api.error().message();
  EXPECT_NE(m.find("libc.so.6 lacks libusb_init, libusb_exit,"), std::string::npos) << m;
  EXPECT_NE(m.find("libusb_bulk_transfer"), std::string::npos) << m;
}

}  // namespace
}  // namespace portier::drivers
