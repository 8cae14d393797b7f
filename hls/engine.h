// pynq-codesign: the top function of the bundle engine (Vitis HLS top: pcd_engine).
#ifndef PCD_ENGINE_H
#define PCD_ENGINE_H

#include "pcd_config.h"

// One pass: reads the pass descriptor at params + desc_offset, streams the pass's input
// map in and its output map out (one DMA transfer each way). hw_id: the overlay's
// hardware ID; status: STATUS_OK or why the descriptor was refused (no stream I/O then).
void pcd_engine(axis_stream& in_stream, axis_stream& out_stream, const beat_t* params,
                unsigned desc_offset, unsigned& hw_id, unsigned& status);

#endif  // PCD_ENGINE_H
