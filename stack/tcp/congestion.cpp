#include "stack/tcp/congestion.h"

#include "stack/tcp/cubic.h"
#include "stack/tcp/newreno.h"

namespace ustack::tcp {

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgorithm algorithm) {
    switch (algorithm) {
        case CongestionAlgorithm::NewReno:
            return std::make_unique<NewReno>();
        case CongestionAlgorithm::Cubic:
            return std::make_unique<Cubic>();
    }
    // Unreachable for valid enumerators; CUBIC is the default as on Linux.
    return std::make_unique<Cubic>();
}

}  // namespace ustack::tcp
