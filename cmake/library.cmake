# The libraries that programs link (docs/api.md), from the objects of the module libraries:
#   libkronvi.so.0, libkronvi.a          single precision, functions kvi_...
#   libkronvi_f64.so.0, libkronvi_f64.a  double precision (-DKVI_DOUBLE), functions kvid_...
# Each exports exactly the stable API of include/kronvi/kronvi.h (tests/api/abi.sh checks it):
# the objects are compiled with -fvisibility=hidden, the shared libraries link with a version
# script, and the archives are one relocatable object whose hidden symbols are made local, so
# that both precisions link into one program. Then: make install (PREFIX), pkg-config files,
# the CMake package (find_package(kronvi)) and CPack's Debian package.

# The header's version is the project's.
foreach(part MAJOR MINOR PATCH)
  file(STRINGS ${CMAKE_SOURCE_DIR}/include/kronvi/kronvi.h v REGEX "#define KVI_VERSION_${part} ")
  string(REGEX REPLACE ".* ([0-9]+).*" "\\1" v "${v}")
  if(NOT v STREQUAL PROJECT_VERSION_${part})
    message(FATAL_ERROR "include/kronvi/kronvi.h: KVI_VERSION_${part} ${v}, project ${PROJECT_VERSION}")
  endif()
endforeach()

# The exported names: the functions the header declares KVI_EXPORT.
file(STRINGS ${CMAKE_SOURCE_DIR}/include/kronvi/kronvi.h KVI_API_DECLS REGEX "^KVI_EXPORT ")
set(KVI_API_NAMES "")
foreach(decl ${KVI_API_DECLS})
  string(REGEX REPLACE "^KVI_EXPORT [^(]*[ *]([a-z_0-9]+)\\(.*" "\\1" name "${decl}")
  list(APPEND KVI_API_NAMES ${name})
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/include/kronvi/kronvi.h)

set(KVI_LIB_DIR ${CMAKE_BINARY_DIR}/lib)
file(MAKE_DIRECTORY ${KVI_LIB_DIR})
set(KVI_LIBS_PRIVATE "-llapacke -lopenblas -lz -lgomp -lpthread -lm")

foreach(prec f32 f64)
  if(prec STREQUAL "f32")
    set(lib kronvi)
    set(pfx kvi_)
    set(cflags "")
  else()
    set(lib kronvi_f64)
    set(pfx kvid_)
    set(cflags " -DKVI_DOUBLE=1")
  endif()
  # shared: the API's sources over the module archives; the linker takes the objects it needs
  set(syms "")
  foreach(name ${KVI_API_NAMES})
    string(REGEX REPLACE "^kvi_" "${pfx}" name ${name})
    string(APPEND syms "${name}\n")
  endforeach()
  file(WRITE ${CMAKE_BINARY_DIR}/${lib}.syms "${syms}")
  string(REPLACE "\n" ";\n    " map "${syms}")
  file(WRITE ${CMAKE_BINARY_DIR}/${lib}.map "{\n  global:\n    ${map}\n  local: *;\n};\n")
  add_library(${lib}_shared SHARED ${SRC_api})
  set_target_properties(${lib}_shared PROPERTIES OUTPUT_NAME ${lib} VERSION ${PROJECT_VERSION}
                        SOVERSION ${PROJECT_VERSION_MAJOR} C_VISIBILITY_PRESET hidden
                        LIBRARY_OUTPUT_DIRECTORY ${KVI_LIB_DIR}
                        LINK_DEPENDS ${CMAKE_BINARY_DIR}/${lib}.map)
  target_compile_options(${lib}_shared PRIVATE ${KVI_WARN} ${KVI_SAN})
  target_include_directories(${lib}_shared PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${lib}_shared PRIVATE kvi_train_${prec})
  target_link_options(${lib}_shared PRIVATE -Wl,--version-script=${CMAKE_BINARY_DIR}/${lib}.map)
  if(NOT KRONVI_SANITIZE)
    target_link_options(${lib}_shared PRIVATE -Wl,--no-undefined)
  endif()

  # static: every module's objects as one relocatable object, hidden symbols localized
  set(arcs "")
  set(tgts "")
  foreach(mod ${KVI_MODULES})
    if(TARGET kvi_${mod}_${prec})
      list(APPEND arcs $<TARGET_FILE:kvi_${mod}_${prec}>)
      list(APPEND tgts kvi_${mod}_${prec})
    endif()
  endforeach()
  set(rename 0)
  if(prec STREQUAL "f64")
    set(rename 1)
  endif()
  string(REPLACE ";" "," arcs "${arcs}")
  add_custom_command(OUTPUT ${KVI_LIB_DIR}/lib${lib}.a
    COMMAND ${CMAKE_COMMAND} -DLD=${CMAKE_LINKER} -DOBJCOPY=${CMAKE_OBJCOPY} -DAR=${CMAKE_AR}
            -DNM=${CMAKE_NM} -DOUT=${KVI_LIB_DIR}/lib${lib}.a -DSYMS=${CMAKE_BINARY_DIR}/${lib}.syms
            -DRENAME=${rename} -DARCHIVES=${arcs} -P ${CMAKE_SOURCE_DIR}/cmake/archive.cmake
    DEPENDS ${tgts} ${CMAKE_SOURCE_DIR}/cmake/archive.cmake VERBATIM
    COMMENT "Linking the archive lib${lib}.a (the stable API only)")
  add_custom_target(${lib}_static ALL DEPENDS ${KVI_LIB_DIR}/lib${lib}.a)

  set(KVI_PC_LIB ${lib})
  set(KVI_PC_CFLAGS "${cflags}")
  set(KVI_PC_PRECISION ${prec})
  configure_file(${CMAKE_SOURCE_DIR}/cmake/kronvi.pc.in ${CMAKE_BINARY_DIR}/${lib}.pc @ONLY)
  install(TARGETS ${lib}_shared LIBRARY DESTINATION lib)
  install(FILES ${KVI_LIB_DIR}/lib${lib}.a DESTINATION lib)
  install(FILES ${CMAKE_BINARY_DIR}/${lib}.pc DESTINATION lib/pkgconfig)
endforeach()

install(FILES ${CMAKE_SOURCE_DIR}/include/kronvi/kronvi.h ${CMAKE_SOURCE_DIR}/include/kronvi/types.h
        DESTINATION include/kronvi)
include(CMakePackageConfigHelpers)
configure_file(${CMAKE_SOURCE_DIR}/cmake/kronviConfig.cmake.in
               ${CMAKE_BINARY_DIR}/kronviConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kronviConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/kronviConfig.cmake ${CMAKE_BINARY_DIR}/kronviConfigVersion.cmake
        DESTINATION lib/cmake/kronvi)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/python/kronvi DESTINATION lib/python3/dist-packages
        PATTERN __pycache__ EXCLUDE) # the Python binding
install(FILES ${CMAKE_SOURCE_DIR}/examples/train_predict.c ${CMAKE_SOURCE_DIR}/examples/CMakeLists.txt
        DESTINATION share/doc/kronvi/examples)

# CPack: a Debian package of everything installed (cpack -G DEB in the build directory).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kronvi)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "sparse Bayesian deep learning: Matrix Normal posteriors, K-FAC (C library, CLI, Python)")
set(CPACK_PACKAGE_CONTACT "kronvi developers <kronvi@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)       # dpkg-shlibdeps (dpkg-dev): the runtime libraries
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # shlibs file and the ldconfig trigger
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, python3-numpy, pkg-config")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libopenblas-dev, liblapacke-dev, zlib1g-dev")
include(CPack)
