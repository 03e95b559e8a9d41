#include "stack/host/fork_wiped.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

namespace ustack::host {

namespace {
ForkWiped* map_page() {
    const long page_size = ::sysconf(_SC_PAGESIZE);
    const size_t size = page_size > 0 ? static_cast<size_t>(page_size) : 4096;
    void* page = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        return nullptr;
    }
    if (::madvise(page, size, MADV_WIPEONFORK) != 0) {
        ::munmap(page, size);
        return nullptr;
    }
    // Zero bytes are what the constructor writes too: a wiped page holds a
    // valid ForkWiped (null owner, zero counts).
    return new (page) ForkWiped();
}
}  // namespace

ForkWiped* fork_wiped() {
    static ForkWiped* const page = map_page();  // the mapping, not its bytes, survives fork
    return page;
}

}  // namespace ustack::host
