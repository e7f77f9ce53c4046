// Small N-API helpers shared by the addon's two parts (relay.c, sipio.c).
#pragma once
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>

/* Throws a JavaScript Error with `msg` and returns from the calling N-API function. */
#define THROW(env, msg) do { napi_throw_error((env), NULL, (msg)); return NULL; } while (0)

/* Declares argc/argv with room for `n` arguments and fills them (argc = how many were passed). */
#define GET_ARGS(n) \
  size_t argc = (n); \
  napi_value argv[(n)]; \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL)

static inline int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static inline napi_value make_int(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}
