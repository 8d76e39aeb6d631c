// A gateway file that includes the agent: the check must refuse it.
#include "agent/audit_log.h"
