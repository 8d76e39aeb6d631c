# Included from bench/CMakeLists.txt (include(management.cmake OPTIONAL)).
# Benches of the management link (issue 10) against a real Mosquitto with
# TLS, started through the test support library (portier_test_mosquitto,
# so they need PORTIER_BUILD_TESTS too). Run by hand (see bench/README.md);
# not pass/fail tests.
if(NOT TARGET portier_management OR NOT TARGET portier_link OR NOT TARGET portier_test_mosquitto
   OR NOT TARGET portier_bench_launcher)
  return()
endif()

foreach(bench envelope_rate_bench outbox_drain_bench)
  add_executable(${bench} ${CMAKE_CURRENT_LIST_DIR}/${bench}.cc
    ${CMAKE_CURRENT_LIST_DIR}/fleet_acker.cc)
  target_link_libraries(${bench} PRIVATE portier_management portier_link portier_test_mosquitto
    portier_bench_launcher Threads::Threads)
endforeach()
# Writes a large backlog straight into the outbox's table (see the bench).
target_link_libraries(outbox_drain_bench PRIVATE PkgConfig::SQLITE3)

# Idle RSS of portierd with the MQTT link up, beside portierd without it.
add_executable(management_idle_bench ${CMAKE_CURRENT_LIST_DIR}/management_idle_bench.cc)
target_link_libraries(management_idle_bench PRIVATE portier_bench_launcher portier_test_mosquitto
  Threads::Threads)
add_dependencies(management_idle_bench portierd)

# The fleet's receive rate (Receiver::receive_message into SQLite), runs and
# single envelopes.
if(TARGET portier_fleet)
  add_executable(fleet_receive_bench ${CMAKE_CURRENT_LIST_DIR}/fleet_receive_bench.cc)
  target_link_libraries(fleet_receive_bench PRIVATE portier_fleet portier_bench_launcher
    Threads::Threads)
endif()
