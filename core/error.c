#include "error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];

int ts_fail(const char *fmt, ...) {
  char raw[sizeof g_msg]; /* an argument may be ts_error() itself */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  /* The message is one line: a control character from the user's text (an override or a path
   * holding a newline) is written as \n, \r, \t or \xNN. */
  size_t n = 0;
  for (const unsigned char *s = (const unsigned char *)raw; *s; s++) {
    unsigned c = *s;
    char esc[8] = {(char)c, 0};
    if (c < 0x20 || c == 0x7f) {
      if (c == '\n' || c == '\r' || c == '\t') snprintf(esc, sizeof esc, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
      else snprintf(esc, sizeof esc, "\\x%02x", c);
    }
    size_t l = strlen(esc);
    if (n + l >= sizeof g_msg) break;
    memcpy(g_msg + n, esc, l);
    n += l;
  }
  g_msg[n] = 0;
  return -1;
}

const char *ts_error(void) { return g_msg; }
void ts_error_clear(void) { g_msg[0] = 0; }
