# Warnings for our own targets only (linked PRIVATE); third-party headers come in
# as system includes and are not held to them.
add_library(meshhook_warnings INTERFACE)
target_compile_options(meshhook_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  $<$<BOOL:${MESHHOOK_WERROR}>:-Werror>)
# GCC 12 reports -Wrestrict inside libstdc++'s char_traits for ordinary
# `"literal" + std::string` at -O2 (GCC bug 105329, a false positive fixed in
# GCC 13): keep it a warning rather than breaking Release builds.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(meshhook_warnings INTERFACE -Wno-restrict)
endif()
