# portierd links gRPC, protobuf and Abseil from their Debian static archives
# (libgrpc-dev, libprotobuf-dev and libabsl-dev ship them) instead of the
# shared libraries. Loading the shared ones pages in their dynamic symbol
# tables and relocations (libgrpc alone: 1.4 MB of .dynsym, .dynstr and
# .rela.dyn), about 3 MiB of portierd's idle RSS
# (bench/management_idle_bench; bench/README.md has the figures). The cost:
# a security update of one of these packages needs portierd rebuilt (a
# Debian package of portierd would list them in Built-Using). Only targets that set the property
# PORTIER_STATIC_GRPC get the archives: the tests and tools keep the shared
# libraries (smaller, faster to link).
option(PORTIER_STATIC_GRPC "Link gRPC, protobuf and Abseil statically into portierd" ON)

if(PORTIER_STATIC_GRPC)
  pkg_check_modules(GRPC_STATIC REQUIRED grpc++ protobuf)
  set(PORTIER_GRPC_ARCHIVES)
  foreach(lib IN LISTS GRPC_STATIC_STATIC_LIBRARIES)
    if(NOT lib MATCHES "^(grpc\\+\\+|grpc|gpr|upb|re2|cares|address_sorting|protobuf|absl_.*)$")
      continue()
    endif()
    string(MAKE_C_IDENTIFIER "PORTIER_ARCHIVE_${lib}" var)
    find_library(${var} NAMES lib${lib}.a)
    if(NOT ${var})
      message(FATAL_ERROR "PORTIER_STATIC_GRPC: lib${lib}.a not found (its -dev package "
                          "ships it); configure with -DPORTIER_STATIC_GRPC=OFF to link "
                          "the shared library")
    endif()
    list(APPEND PORTIER_GRPC_ARCHIVES ${${var}})
  endforeach()
  list(REMOVE_DUPLICATES PORTIER_GRPC_ARCHIVES)
  # The archives refer to each other in cycles (gRPC and Abseil): one group
  # the linker rescans. What they need from shared libraries follows it.
  add_library(portier_grpc_static INTERFACE)
  string(REPLACE ";" "," archives "${PORTIER_GRPC_ARCHIVES}")
  target_link_libraries(portier_grpc_static INTERFACE "$<LINK_GROUP:RESCAN,${archives}>"
    OpenSSL::SSL OpenSSL::Crypto z Threads::Threads dl rt m atomic)
endif()
