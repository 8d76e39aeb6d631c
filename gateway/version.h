#pragma once

#include "common/version.h"

namespace portier::gateway {
using portier::kVersion;
}
