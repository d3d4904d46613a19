#ifndef PTP_CHEAP_H
#define PTP_CHEAP_H

/// Keeps freed large blocks in the malloc heap instead of returning them to the kernel, so
/// that tensors reallocated every step reuse warm pages (glibc; a no-op elsewhere).
void ptp_keep_freed_memory(void);

#endif
