#include "CHeap.h"

#include <stdlib.h>  // defines __GLIBC__ on glibc systems (tested below)

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

// Applied when the program loads, before the first tensor exists: a lazily initialised Swift
// global that only called this was never run (its value, Void, was unused).
__attribute__((constructor)) static void ptp_tune_heap_at_load(void) { ptp_keep_freed_memory(); }
