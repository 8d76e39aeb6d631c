// A composition root that names a concrete driver: the check must refuse it.
#include "drivers/driver_registry.h"
#include "drivers/pcsc/pcsc_reader_driver.h"
