# Included from bench/CMakeLists.txt after find_package(benchmark).
if(benchmark_FOUND)
  add_executable(policy_decide_bench ${CMAKE_CURRENT_LIST_DIR}/policy_decide_bench.cc)
  target_link_libraries(policy_decide_bench PRIVATE portier_policy benchmark::benchmark)
endif()
