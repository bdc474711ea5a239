# Warning flags shared by every target of the project.
function(moerun_set_warnings target)
  set(_w -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
         -Wimplicit-fallthrough -Wno-missing-field-initializers)
  if(MOERUN_WERROR)
    list(APPEND _w -Werror)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC's flow-sensitive warnings give false positives at -O3 inside libstdc++ (std::string
      # and std::vector internals, e.g. GCC bugs 105329 and 105651): keep them visible, not fatal.
      list(APPEND _w -Wno-error=maybe-uninitialized -Wno-error=restrict
                     -Wno-error=stringop-overflow -Wno-error=array-bounds)
    endif()
  endif()
  target_compile_options(${target} INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_w}>)
  if(MOERUN_CUDA)
    set(_cw -Xcompiler=-Wall,-Wextra)
    if(MOERUN_WERROR)
      list(APPEND _cw -Werror=all-warnings)
    endif()
    target_compile_options(${target} INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:${_cw}>)
  endif()
endfunction()
