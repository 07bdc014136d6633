# install.cmake: what `cmake --install` puts in place, included at the end
# of the top-level CMakeLists.txt.
#
#   lib/       libmemmapfs.so (+ soname links), libmemmapfs.a
#   include/   memmapfs.h
#   lib/pkgconfig/memmapfs.pc           (relocatable: paths from ${pcfiledir})
#   lib/cmake/memmapfs/                 find_package(memmapfs) ->
#                                       memmapfs::memmapfs (shared),
#                                       memmapfs::memmapfs_static
#   bin/mmfs                            the command-line tool
#   share/lua/5.x/memmapfs/*.lua, lib/lua/5.x/memmapfs/core.so
#                                       for every Lua whose module was built
#
# One more library file (such as a policy VM loaded with dlopen) is one
# line: list(APPEND MMFS_INSTALL_LIBS <target>) before this file runs.
include(CMakePackageConfigHelpers)

list(APPEND MMFS_INSTALL_LIBS memmapfs_shared memmapfs_static)

# What a static link needs besides libmemmapfs.a: the libraries the engine
# calls (xxhash is inlined, so not it): utf8proc, libstemmer, and libdl
# for the policy VM.  The .pc says the same through
# Requires.private / Libs.private; the CMake package through the static
# target's link interface.
set(MMFS_PC_REQUIRES_PRIVATE libutf8proc)
set(MMFS_PC_LIBS_PRIVATE "-lstemmer")
set(MMFS_STATIC_DEPS ${UTF8PROC_LIBRARIES} ${STEMMER_LIBRARY})
if(MMFS_HAVE_SODIUM)
  list(APPEND MMFS_PC_REQUIRES_PRIVATE libsodium)
  list(APPEND MMFS_STATIC_DEPS ${SODIUM_LIBRARIES})
endif()
if(MMFS_HAVE_ZSTD)
  list(APPEND MMFS_PC_REQUIRES_PRIVATE libzstd)
  list(APPEND MMFS_STATIC_DEPS ${ZSTD_LIBRARIES})
endif()
# The policy VM is libmemmapfs-policy.so, opened with dlopen (it brings
# its own Lua 5.4); sanitizer builds link it in, and Lua 5.4 with it.
if(MMFS_HAVE_POLICY AND MMFS_PVM_DIRECT)
  list(APPEND MMFS_PC_REQUIRES_PRIVATE lua5.4)
  list(APPEND MMFS_STATIC_DEPS ${LUA54_LIBRARIES})
elseif(MMFS_HAVE_POLICY)
  string(APPEND MMFS_PC_LIBS_PRIVATE " -ldl")
  list(APPEND MMFS_STATIC_DEPS ${CMAKE_DL_LIBS})
endif()
string(REPLACE ";" " " MMFS_PC_REQUIRES_PRIVATE "${MMFS_PC_REQUIRES_PRIVATE}")
target_link_libraries(memmapfs_static INTERFACE
  $<INSTALL_INTERFACE:${MMFS_STATIC_DEPS}>)

install(TARGETS ${MMFS_INSTALL_LIBS} EXPORT memmapfsTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES core/include/memmapfs.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# pkg-config: every path relative to where the .pc lies, so an install
# under any --prefix finds itself (absolute install dirs stay absolute).
set(MMFS_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(MMFS_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(MMFS_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(MMFS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH rel /root/${MMFS_PC_DIR} /root)
  string(REGEX REPLACE "/$" "" rel "${rel}")
  set(MMFS_PC_PREFIX "\${pcfiledir}/${rel}")
endif()
configure_file(cmake/memmapfs.pc.in ${CMAKE_BINARY_DIR}/memmapfs.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/memmapfs.pc DESTINATION ${MMFS_PC_DIR})

set(MMFS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/memmapfs)
install(EXPORT memmapfsTargets NAMESPACE memmapfs:: DESTINATION ${MMFS_CMAKE_DIR})
configure_package_config_file(cmake/memmapfsConfig.cmake.in
  ${CMAKE_BINARY_DIR}/memmapfsConfig.cmake INSTALL_DESTINATION ${MMFS_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/memmapfsConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/memmapfsConfig.cmake ${CMAKE_BINARY_DIR}/memmapfsConfigVersion.cmake
  DESTINATION ${MMFS_CMAKE_DIR})

# Programs (bindings/cli adds mmfs to MMFS_INSTALL_PROGRAMS).
if(MMFS_INSTALL_PROGRAMS)
  install(TARGETS ${MMFS_INSTALL_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# The Lua modules: for each Lua built, the Lua files and memmapfs.core in
# the directories that Lua searches under the prefix (share/lua/5.x,
# lib/lua/5.x; Debian's /usr/local and /usr layouts alike).  LuaJIT
# reads lua/5.1, where Lua 5.1's module goes; its own build is for the
# test suite only.
set(MMFS_INSTALL_LMOD_DIR ${CMAKE_INSTALL_DATADIR}/lua CACHE STRING "Where Lua files go (+ /5.x)")
set(MMFS_INSTALL_CMOD_DIR ${CMAKE_INSTALL_LIBDIR}/lua CACHE STRING "Where Lua C modules go (+ /5.x)")
foreach(flavor ${MMFS_LUA_FLAVORS})
  string(REPLACE "|" ";" f "${flavor}")
  list(GET f 0 fname)
  if(fname STREQUAL "luajit")
    continue()
  endif()
  string(REGEX REPLACE "^lua([0-9])([0-9])$" "\\1.\\2" luaver ${fname})
  set(tgt memmapfs_${fname})
  if(fname STREQUAL "lua54")
    set(tgt memmapfs_lua)
  endif()
  install(TARGETS ${tgt} LIBRARY DESTINATION ${MMFS_INSTALL_CMOD_DIR}/${luaver}/memmapfs)
  install(DIRECTORY lua/memmapfs DESTINATION ${MMFS_INSTALL_LMOD_DIR}/${luaver}
    FILES_MATCHING PATTERN "*.lua")
endforeach()
