# Hardening for a program that runs as root and parses hostile input (registry responses, layer
# tarballs, an image's /etc/passwd): every flag the compiler and linker accept, checked rather
# than assumed, so gcc and clang builds both work. ci/check-hardening.sh reads the result back
# from the binary.
include(CheckCCompilerFlag)
include(CheckCSourceCompiles)
include(CheckLinkerFlag)
include(CheckPIESupported)

# A position-independent executable, so ASLR moves the program too (CMP0083 turns
# POSITION_INDEPENDENT_CODE into -pie at link time).
check_pie_supported(OUTPUT_VARIABLE mar_pie_msg LANGUAGES C)
if(NOT CMAKE_C_LINK_PIE_SUPPORTED)
  message(FATAL_ERROR "MAR_HARDEN: the toolchain cannot link a PIE: ${mar_pie_msg}")
endif()
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

# Stack canaries in every function with an array or an address-taken local; stack probes so a
# large allocation cannot jump over the guard page; Intel CET marks (endbr64, shadow-stack
# compatible code) where the target has them.
check_c_compiler_flag(-fstack-protector-strong MAR_HAVE_STACK_PROTECTOR)
check_c_compiler_flag(-fstack-clash-protection MAR_HAVE_STACK_CLASH)
check_c_compiler_flag(-fcf-protection MAR_HAVE_CF_PROTECTION)
if(MAR_HAVE_STACK_PROTECTOR)
  add_compile_options(-fstack-protector-strong)
endif()
if(MAR_HAVE_STACK_CLASH)
  add_compile_options(-fstack-clash-protection)
endif()
if(MAR_HAVE_CF_PROTECTION)
  add_compile_options(-fcf-protection)
endif()

# _FORTIFY_SOURCE needs optimization (glibc's features.h warns and ignores it at -O0, which
# -Werror turns into a failure), so it applies to the optimized configurations only; not with
# sanitizers either, whose interceptors the __*_chk wrappers would bypass. Level 3 (object sizes
# known only at run time) needs gcc 12 or clang 9 and glibc 2.34; otherwise level 2.
if(NOT MAR_SANITIZE)
  set(CMAKE_REQUIRED_FLAGS "-O2 -D_FORTIFY_SOURCE=3")
  check_c_source_compiles("
#include <string.h>
#if !defined(__USE_FORTIFY_LEVEL) || __USE_FORTIFY_LEVEL < 3
#error level 3 unsupported
#endif
int main(void) { return 0; }" MAR_HAVE_FORTIFY3)
  unset(CMAKE_REQUIRED_FLAGS)
  if(MAR_HAVE_FORTIFY3)
    set(mar_fortify 3)
  else()
    set(mar_fortify 2)
  endif()
  add_compile_options("$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE>"
                      "$<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=${mar_fortify}>")
endif()

# Full RELRO (the GOT read-only after relocation, every symbol bound at start-up) and a stack
# that is never executable, whatever an object's note says.
check_linker_flag(C "LINKER:-z,relro,-z,now" MAR_HAVE_RELRO_NOW)
if(MAR_HAVE_RELRO_NOW)
  add_link_options("LINKER:-z,relro,-z,now")
endif()
check_linker_flag(C "LINKER:-z,noexecstack" MAR_HAVE_NOEXECSTACK)
if(MAR_HAVE_NOEXECSTACK)
  add_link_options("LINKER:-z,noexecstack")
endif()
