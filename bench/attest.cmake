# Included from bench/CMakeLists.txt (include(attest.cmake OPTIONAL)).
if(TARGET portier_attest)
  add_executable(event_log_replay_bench ${CMAKE_CURRENT_LIST_DIR}/event_log_replay_bench.cc)
  target_link_libraries(event_log_replay_bench PRIVATE portier_attest)
endif()
