# Included from bench/CMakeLists.txt. health_run_bench: every non-TPM health
# check against this machine's /proc and /sys, 100 full runs; prints wall and
# CPU time per run and the steady-state cost at default intervals. Run by
# hand (see bench/README.md); not a pass/fail test.
if(NOT TARGET portier_health)
  return()
endif()
add_executable(health_run_bench ${CMAKE_CURRENT_LIST_DIR}/health_run_bench.cc)
target_link_libraries(health_run_bench PRIVATE portier_health Threads::Threads)
