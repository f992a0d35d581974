// Random (version 4) UUIDs: message ids, candidate ids, node guids.
#pragma once

#include <string>

namespace warren {

std::string NewUuid();

}  // namespace warren
