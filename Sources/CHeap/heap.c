#include "CHeap.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ptp_keep_freed_memory(void) {
#if defined(__GLIBC__)
    // Blocks up to 1 GiB come from the heap (not a fresh mmap each time), and the heap is
    // trimmed only when 1 GiB is free at its top.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
