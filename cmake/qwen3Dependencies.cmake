# Finds what qwen3's headers need; included by the build and by the installed package config.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(xsimd)
# Debian 12's xsimd 8.1 package declares a link to "xtl" but ships no xtl package; xsimd is
# header-only and does not need it, so the dangling name is dropped.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_qwen3_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_qwen3_xsimd_links STREQUAL "xtl")
    set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "")
  endif()
  unset(_qwen3_xsimd_links)
endif()
