/* error.h: library-wide error reporting.
 * Library functions never exit on bad input: they return a status (<0 or NULL) and leave a
 * one-line message in a per-thread buffer that the CLI prints once. */
#ifndef TS_ERROR_H
#define TS_ERROR_H

/* Format a message into the per-thread buffer; always returns -1 so callers can
 * `return ts_fail("...")`. */
int ts_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set with ts_fail ("" if none). */
const char *ts_error(void);
void ts_error_clear(void);

#endif
