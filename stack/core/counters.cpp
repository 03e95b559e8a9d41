#include "stack/core/counters.h"

namespace ustack {

namespace {
constexpr std::string_view names[] = {
#define USTACK_COUNTER_NAME(name, description) #name,
    USTACK_COUNTERS(USTACK_COUNTER_NAME)
#undef USTACK_COUNTER_NAME
};
constexpr std::string_view descriptions[] = {
#define USTACK_COUNTER_DESC(name, description) description,
    USTACK_COUNTERS(USTACK_COUNTER_DESC)
#undef USTACK_COUNTER_DESC
};
}  // namespace

std::string_view counter_name(Counter c) { return names[static_cast<size_t>(c)]; }
std::string_view counter_description(Counter c) { return descriptions[static_cast<size_t>(c)]; }

uint64_t Counters::total_drops() const {
    uint64_t total = 0;
    for (size_t i = 0; i < counter_count; ++i) {
        if (names[i].starts_with("drop_")) {
            total += values_[i];
        }
    }
    return total;
}

}  // namespace ustack
