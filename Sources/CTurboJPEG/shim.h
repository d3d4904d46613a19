// libjpeg-turbo's TurboJPEG API: whole-image compression and decompression that reports errors
// through return values (tjGetErrorStr2), not longjmp, which is what makes it safe from Swift.
#include <turbojpeg.h>
