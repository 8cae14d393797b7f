// pynq-codesign: every kernel of the bundle engine (included by the generated header
// after the overlay constants).
#ifndef PCD_KERNELS_H
#define PCD_KERNELS_H

#include "pcd_types.h"
#include "pcd_axis.h"
#include "requant.h"
#include "mul.h"
#include "buffers.h"
#include "convert.h"
#include "fold.h"
#include "descriptor.h"
#include "stream_io.h"
#include "dwconv.h"
#include "pwconv.h"
#include "conv3.h"
#include "pool.h"

#endif  // PCD_KERNELS_H
