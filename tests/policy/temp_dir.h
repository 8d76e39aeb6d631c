// The policy tests' temp dir: the one of tests/support (a fresh directory
// per test, removed afterwards).
#pragma once

#include "support/temp_dir.h"

namespace portier::policy::testing {

using TempDir = test_support::TempDir;

}  // namespace portier::policy::testing
