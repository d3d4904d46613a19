#include "CHeap.h"

#include <stdlib.h>  // defines __GLIBC__ on glibc systems (tested below)

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ptp_keep_freed_memory(void) {
#if defined(__GLIBC__)
    // Blocks below 64 MiB come from the heap (not a fresh mmap each time: glibc's own limit is
    // 32 MiB and adapts downwards), and the heap is trimmed only when 512 MiB is free at its top.
    // Larger blocks (a VAE's 512x512 activations) are mapped and returned when freed, so that
    // they never leave holes the heap keeps.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
}

// Applied when the program loads, before the first tensor exists: a lazily initialised Swift
// global that only called this was never run (its value, Void, was unused).
__attribute__((constructor)) static void ptp_tune_heap_at_load(void) { ptp_keep_freed_memory(); }
