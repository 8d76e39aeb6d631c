# Included from bench/CMakeLists.txt. Benches against a running portierd:
# they start the daemon from PORTIER_BIN_DIR, so build portierd with them.
# Not registered with ctest: benches are run by hand (see bench/README.md).
add_library(portier_bench_launcher STATIC ${CMAKE_CURRENT_LIST_DIR}/daemon_launcher.cc
  ${CMAKE_CURRENT_LIST_DIR}/scan_receiver.cc ${CMAKE_CURRENT_LIST_DIR}/scan_subscribers.cc
  ${CMAKE_CURRENT_LIST_DIR}/grpc_floor_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/latency_summary.cc)
target_include_directories(portier_bench_launcher PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(portier_bench_launcher PUBLIC portier_proto Threads::Threads)
target_compile_definitions(portier_bench_launcher PRIVATE
  PORTIER_BIN_DIR="${CMAKE_BINARY_DIR}/bin")

foreach(bench scan_latency_bench daemon_idle_bench unary_call_bench dos_wait_bench)
  add_executable(${bench} ${CMAKE_CURRENT_LIST_DIR}/${bench}.cc)
  target_link_libraries(${bench} PRIVATE portier_bench_launcher portier_proto Threads::Threads)
  target_compile_definitions(${bench} PRIVATE PORTIER_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  # The daemon the bench starts is built alongside it.
  add_dependencies(${bench} portierd)
endforeach()

# Links the gateway library itself: times resolve_peer / verify_peer in
# process (no daemon), against one getsockopt(SO_PEERCRED).
add_executable(identity_resolve_bench ${CMAKE_CURRENT_LIST_DIR}/identity_resolve_bench.cc)
target_link_libraries(identity_resolve_bench PRIVATE portier_bench_launcher portier_gateway
  Threads::Threads)
