/* Seed compatibility: `#include "mntns_filter.h"` (with -I include). */
#include <gadget/mntns_filter.h>
