// tilec shim for CANN's CPU debug library header: the launch API (GmAlloc, GmFree, SetKernelMode,
// ICPU_RUN_KF, ICPU_SET_TILING_KEY) lives in kernel_operator.h's emulation.
#pragma once
#include "kernel_operator.h"
