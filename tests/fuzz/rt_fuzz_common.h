// What the container runtime's harnesses include (src/runtime links nothing
// from src/core; deep comparison is rt_value_identical).
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "rt_common.h"
#include "rt_value.h"
