# Dependencies point one way: run as `cmake -DSRC=<source dir> -P this`.
cmake_policy(SET CMP0057 NEW)
# Each folder may include only what its rule allows; a line that breaks a
# rule is printed with its file and line, and the check fails.
#   common/   nothing of the project's other folders
#   platform/ common/ (it implements common/crypto/; only daemon/ may name it)
#   policy/   common/
#   drivers/  common/
#   gateway/  common/ policy/ drivers/ (never agent/ or daemon/)
#   agent/    common/ policy/ agent/, of gateway/ only GatewayView, the
#             in-process subscriber and proto_convert (the management link
#             sends devices as the API shows them) (never daemon/)
#   tools/    anything but daemon/ and platform/
#   daemon/   anything (the composition root; nothing includes it), except
#             a concrete driver or feature: from drivers/ only driver.h and
#             driver_registry.h, from agent/ no feature folder (agent/<f>/)
set(rules
  "common|gateway/|agent/|daemon/|drivers/|policy/|tools/|platform/"
  "platform|gateway/|agent/|daemon/|drivers/|policy/|tools/"
  "policy|gateway/|agent/|daemon/|drivers/|tools/|platform/"
  "drivers|gateway/|agent/|daemon/|policy/|tools/|platform/"
  "gateway|agent/|daemon/|tools/|platform/"
  "agent|gateway/|daemon/|tools/|platform/|!gateway/gateway_view.h|!gateway/queue_subscriber.h|!gateway/proto_convert.h"
  "tools|daemon/|platform/")
set(broken 0)
foreach(rule ${rules})
  string(REPLACE "|" ";" parts "${rule}")
  list(POP_FRONT parts folder)
  set(allowed "")
  foreach(p ${parts})
    if(p MATCHES "^!")
      string(SUBSTRING "${p}" 1 -1 a)
      list(APPEND allowed "#include \"${a}\"")
      list(REMOVE_ITEM parts "${p}")
    endif()
  endforeach()
  file(GLOB_RECURSE files "${SRC}/${folder}/*.h" "${SRC}/${folder}/*.cc")
  foreach(f ${files})
    file(STRINGS "${f}" lines REGEX "^#include \"")
    foreach(line ${lines})
      if(line IN_LIST allowed)
        continue()
      endif()
      foreach(forbidden ${parts})
        string(FIND "${line}" "#include \"${forbidden}" at)
        if(at EQUAL 0)
          file(RELATIVE_PATH rel "${SRC}" "${f}")
          message("${rel}: ${line}: ${folder}/ may not include ${forbidden}")
          math(EXPR broken "${broken} + 1")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()
# The device hub and its parts speak plain C++ and Result<T>: only the gRPC
# service and the files that serve it include gRPC or protobuf headers.
set(transport gateway_service bounded_stream proto_convert request_checks unix_listener)
file(GLOB hub_files "${SRC}/gateway/*.h" "${SRC}/gateway/*.cc")
foreach(f ${hub_files})
  get_filename_component(stem "${f}" NAME_WE)
  if(stem IN_LIST transport)
    continue()
  endif()
  file(STRINGS "${f}" lines REGEX "^#include [<\"](grpc|google/protobuf|portier/v1/)")
  foreach(line ${lines})
    file(RELATIVE_PATH rel "${SRC}" "${f}")
    message("${rel}: ${line}: only the gRPC service's files may speak gRPC or protobuf")
    math(EXPR broken "${broken} + 1")
  endforeach()
endforeach()

# The composition root builds drivers and features by name, through their
# registries: it names none of them.
file(GLOB_RECURSE files "${SRC}/daemon/*.h" "${SRC}/daemon/*.cc")
foreach(f ${files})
  file(STRINGS "${f}" lines REGEX "^#include \"(drivers|agent)/")
  foreach(line ${lines})
    set(why "")
    if(line MATCHES "^#include \"drivers/" AND
       NOT line MATCHES "^#include \"drivers/(driver|driver_registry)\\.h\"")
      set(why "daemon/ may include from drivers/ only driver.h and driver_registry.h")
    elseif(line MATCHES "^#include \"agent/[^/\"]+/")
      set(why "daemon/ may not include an agent feature's folder (use the feature registry)")
    endif()
    if(why)
      file(RELATIVE_PATH rel "${SRC}" "${f}")
      message("${rel}: ${line}: ${why}")
      math(EXPR broken "${broken} + 1")
    endif()
  endforeach()
endforeach()
if(broken GREATER 0)
  message(FATAL_ERROR "${broken} include(s) against the dependency direction")
endif()
message("include direction: OK")
