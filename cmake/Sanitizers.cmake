add_library(meshhook_sanitizers INTERFACE)
if(MESHHOOK_SANITIZE STREQUAL "address")
  target_compile_options(meshhook_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(meshhook_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(MESHHOOK_SANITIZE STREQUAL "thread")
  # -Wno-tsan: GCC 12 warns that TSan does not model atomic_thread_fence,
  # which Asio uses; the fences sit beside atomics TSan does see.
  target_compile_options(meshhook_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer
                         $<$<COMPILE_LANGUAGE:CXX>:-Wno-tsan>)
  target_link_options(meshhook_sanitizers INTERFACE -fsanitize=thread)
  # librdkafka's C11 threads made visible to TSan (see the file's comment).
  add_library(meshhook_tsan_c11_threads SHARED ${CMAKE_CURRENT_LIST_DIR}/tsan_c11_threads.c)
  target_compile_options(meshhook_tsan_c11_threads PRIVATE -fsanitize=thread)
  target_link_options(meshhook_tsan_c11_threads PRIVATE -fsanitize=thread)
  target_link_libraries(meshhook_tsan_c11_threads PRIVATE Threads::Threads)
  set_target_properties(meshhook_tsan_c11_threads PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib)
  target_link_libraries(meshhook_sanitizers INTERFACE meshhook_tsan_c11_threads)
elseif(NOT MESHHOOK_SANITIZE STREQUAL "")
  message(FATAL_ERROR "MESHHOOK_SANITIZE must be '', 'address' or 'thread', not '${MESHHOOK_SANITIZE}'")
endif()
