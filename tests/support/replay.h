/* A reg_http_ops transport that replays canned exchanges (docs/internals/style.md §8 "Injected
 * transport").
 *
 * Script format (one file, blocks separated by a line "---"):
 *   > GET https://registry.example/v2/x/manifests/latest    request line; '*' at the end = prefix
 *   > has: Authorization: Bearer tok                          a request header line must contain
 *   > lacks: Authorization                                    no request header may start with
 *   > body-has: grant_type=refresh_token                      the request body must contain
 *   > body-is: layer.bin 0-99                                 the body is exactly those bytes
 *                                                             of a file (inclusive; whole file
 *                                                             without a range)
 *   > body-len: 0                                             the body has that many bytes
 *   < 200                                                     status, or "< !connect" / "< !recv"
 *   < Content-Type: application/json                          response header
 *   < @body index.json                                        body from a file of the case
 *   < body {"errors":[]}                                      inline body
 *   < !recv-after 100                                          send 100 body bytes, then reset
 * In every line, {{digest:FILE}} and {{size:FILE}} expand to the sha256 digest and byte size of a
 * file of the case. A request matches the first unused block with its method and URL, so
 * concurrent requests may arrive in any order. Request bodies are read through
 * reg_http_body_next() before the request is matched, as a transport sends them; "< !recv" after
 * a body is a connection dropped once the body was sent. Streamed answers reach the sink in
 * pieces of 16 KiB; a producer or sink that pauses is resumed by reg_http_ops.unpause. */
#ifndef MAR_TEST_REPLAY_H
#define MAR_TEST_REPLAY_H

#include "registry/registry.h"

typedef struct replay replay;

/* Loads <dir>/exchanges. Returns NULL and prints why on failure. */
replay *replay_load(const char *dir);
void replay_free(replay *r);
const reg_http_ops *replay_ops(void);

/* After a run: blocks never used, requests with no block or failing a has/lacks rule. */
size_t replay_unused(const replay *r);
size_t replay_violations(const replay *r);
const char *replay_report(const replay *r);
size_t replay_requests(const replay *r);
/* The longest delay a request asked for before starting (backoff, Retry-After), in ms. */
uint64_t replay_max_delay_ms(const replay *r);
/* Every request line and header sent, for secret checks. */
const char *replay_transcript(const replay *r);

#endif
