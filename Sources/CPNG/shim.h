// libpng's simplified API (png_image_*) reports errors through return values, not longjmp,
// which is what makes it safe to call from Swift.
#include <png.h>
