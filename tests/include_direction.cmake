# Dependencies point one way: run as `cmake -DSRC=<source dir> -P this`.
# Each folder may include only what its rule allows; a line that breaks a
# rule is printed with its file and line, and the check fails.
#   common/   nothing of the project's other folders
#   platform/ common/ (it implements common/crypto/; only daemon/ may name it)
#   policy/   common/
#   drivers/  common/
#   gateway/  common/ policy/ drivers/ (never agent/ or daemon/)
#   agent/    common/ policy/ agent/ (never gateway/ or daemon/)
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
  "agent|gateway/|daemon/|tools/|platform/"
  "tools|daemon/|platform/")
set(broken 0)
foreach(rule ${rules})
  string(REPLACE "|" ";" parts "${rule}")
  list(POP_FRONT parts folder)
  file(GLOB_RECURSE files "${SRC}/${folder}/*.h" "${SRC}/${folder}/*.cc")
  foreach(f ${files})
    file(STRINGS "${f}" lines REGEX "^#include \"")
    foreach(line ${lines})
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
