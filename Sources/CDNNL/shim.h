// oneDNN's C API (Debian's libdnnl-dev, built on OpenMP), and the two libgomp calls the Engine
// uses to keep each of its threads' oneDNN calls single-threaded.
#include <oneapi/dnnl/dnnl.h>

int omp_get_max_threads(void);
void omp_set_num_threads(int threads);
