# Warnings for our own targets only (linked PRIVATE); third-party headers come in
# as system includes and are not held to them.
add_library(meshhook_warnings INTERFACE)
target_compile_options(meshhook_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  $<$<BOOL:${MESHHOOK_WERROR}>:-Werror>)
