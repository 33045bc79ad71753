# bench_analyze: pairs/s of the analyzer's comparison core (include from bench/CMakeLists.txt).
add_executable(bench_analyze ${CMAKE_CURRENT_LIST_DIR}/bench_analyze.c)
target_link_libraries(bench_analyze PRIVATE cutover_core)
