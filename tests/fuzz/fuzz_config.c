/* libFuzzer harness: the INI parser plus validation (core/config.h). Input: config text. A
 * text that parses must validate, print back with ts_config_to_ini and parse back to a config
 * that prints the same; each line of the input is also tried as a section.key=value override. */
#include "fuzz.h"
#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) abort();
  memcpy(text, data, size);
  text[size] = 0;
  ts_config c, back;
  ts_config_defaults(&c);
  if (ts_config_parse_string(&c, text, "fuzz.ini") == 0) {
    if (ts_config_validate(&c, "fuzz.ini")) abort();
    char *ini = ts_config_to_ini(&c);
    ts_config_defaults(&back);
    if (ts_config_parse_string(&back, ini, "round trip")) abort();
    char *ini2 = ts_config_to_ini(&back); /* unused list slots may differ: compare the text */
    if (strcmp(ini, ini2)) abort();
    free(ini);
    free(ini2);
  }
  ts_config_defaults(&c);
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (ts_config_override(&c, line) == 0 && ts_config_validate(&c, "overrides")) abort();
  free(text);
  return 0;
}
