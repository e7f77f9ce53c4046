// SIP UDP I/O thread (sipio.c): adds its functions to the addon's exports.
#pragma once
#include "napi-util.h"

void sipio_register(napi_env env, napi_value exports);
