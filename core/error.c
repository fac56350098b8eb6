#include "error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_msg[1024];

int ts_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  return -1;
}

const char *ts_error(void) { return g_msg; }
void ts_error_clear(void) { g_msg[0] = 0; }
