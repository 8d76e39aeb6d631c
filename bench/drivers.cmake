# Included from bench/CMakeLists.txt (after gateway.cmake, whose launcher
# these use). Benches of the card reader and USB paths through portierd:
# apdu_bench (a private pcscd with the vpcd virtual reader; needs root,
# pcscd and vsmartcard-vpcd at run time) and hotplug_bench (a fixture sysfs
# tree and a uevent socket). Not registered with ctest: benches are run by
# hand (see bench/README.md).
if(NOT TARGET portier_bench_launcher)
  return()
endif()

add_executable(hotplug_bench ${CMAKE_CURRENT_LIST_DIR}/hotplug_bench.cc)
target_link_libraries(hotplug_bench PRIVATE portier_bench_launcher portier_proto Threads::Threads)
# The USB tests' fixture sysfs tree (tests/drivers/usb/sysfs_fixture.h, no gtest).
target_include_directories(hotplug_bench PRIVATE ${CMAKE_SOURCE_DIR}/tests)
add_dependencies(hotplug_bench portierd)

# The bench is its own PC/SC client (the baseline): it links libpcsclite.
pkg_check_modules(PORTIER_BENCH_PCSC QUIET IMPORTED_TARGET libpcsclite)
if(PORTIER_BENCH_PCSC_FOUND)
  add_executable(apdu_bench ${CMAKE_CURRENT_LIST_DIR}/apdu_bench.cc
    ${CMAKE_SOURCE_DIR}/tests/drivers/pcsc/private_pcscd.cc
    ${CMAKE_SOURCE_DIR}/tests/drivers/pcsc/virtual_card.cc)
  # The PC/SC tests' pcscd and card emulator (gtest-free).
  target_include_directories(apdu_bench PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(apdu_bench PRIVATE portier_bench_launcher portier_proto
    PkgConfig::PORTIER_BENCH_PCSC Threads::Threads)
  add_dependencies(apdu_bench portierd)
else()
  message(STATUS "bench: libpcsclite not found, apdu_bench is not built")
endif()
