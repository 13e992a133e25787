/* Seed compatibility: `#include "types.h"` (with -I include). */
#include <gadget/types.h>
