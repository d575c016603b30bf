/* cltrain/cltrain.h — the umbrella header: include this one. */
#ifndef CLTRAIN_CLTRAIN_H
#define CLTRAIN_CLTRAIN_H

#include "cltrain/status.h"
#include "cltrain/device.h"
#include "cltrain/tensor.h"
#include "cltrain/gemm.h"
#include "cltrain/tune.h"
#include "cltrain/data.h"
#include "cltrain/loader.h"
#include "cltrain/loss.h"
#include "cltrain/model.h"
#include "cltrain/checkpoint.h"
#include "cltrain/optim.h"
#include "cltrain/sched.h"
#include "cltrain/trainer.h"

#define CLTRAIN_VERSION_STRING "0.1.0"

#endif
