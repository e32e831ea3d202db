# Every dependency is a Debian 12 package; `make deps` installs them.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED)            # Beast, Asio, System: header-only
find_package(OpenSSL 3 REQUIRED)
find_package(simdjson REQUIRED)
find_package(spdlog REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)

# Beast/Asio are only ever used as a compiled dependency of our own .cpp files.
add_library(meshhook_asio INTERFACE)
target_link_libraries(meshhook_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(meshhook_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW BOOST_ASIO_DISABLE_CONCEPTS)

# The services allocate per request (Beast fields, librdkafka messages); with
# jemalloc meshhook-ingest spends ~7% less CPU per webhook than with glibc's
# malloc (side by side, benchmarks/RESULTS.md). Not under sanitizers or
# libFuzzer, which bring allocators of their own.
option(MESHHOOK_JEMALLOC "Link meshhook-ingest and meshhook-consumer against jemalloc" ON)
add_library(meshhook_allocator INTERFACE)
if(MESHHOOK_JEMALLOC AND MESHHOOK_SANITIZE STREQUAL "" AND NOT MESHHOOK_FUZZ)
  find_library(JEMALLOC_LIBRARY NAMES jemalloc REQUIRED)  # Debian: libjemalloc-dev
  target_link_libraries(meshhook_allocator INTERFACE ${JEMALLOC_LIBRARY})
endif()
