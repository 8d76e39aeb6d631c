// A hub part that speaks gRPC: include_direction.cmake must refuse it.
#include <grpcpp/support/status.h>
