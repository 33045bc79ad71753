/* px_h2c: the HTTP/1.1 `Upgrade: h2c` request (RFC 7540 section 3.2): whether a
 * request head asks for it, and its HTTP2-Settings payload. Pure functions over
 * a parsed head; the frontends do the switching. */
#ifndef CUT_PX_H2C_H
#define CUT_PX_H2C_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/px_msg.h"

/* The largest decoded HTTP2-Settings payload accepted (40 settings). */
#define PX_H2C_SETTINGS_MAX 240

/* The response that switches the connection (sent before any HTTP/2 frame). */
#define PX_H2C_101 "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

/* 1 when `h` (borrowed; lower-case names) asks for h2c: an `Upgrade` field
 * lists the token `h2c` and the `Connection` fields list both `Upgrade` and
 * `HTTP2-Settings` (tokens compared ignoring case); 0 otherwise. Whether the
 * upgrade may happen (cleartext, HTTP/1.1, no body) is the caller's choice. */
int px_h2c_requested(const struct px_headers *h);

/*
 * Decodes and checks the HTTP2-Settings field of `h` (borrowed) into
 * out[cap] (cap >= PX_H2C_SETTINGS_MAX): base64url with the padding omitted
 * (trailing `=` is tolerated), a whole number of 6-byte settings, each known
 * setting within its range (RFC 9113 section 6.5.2). Returns the payload
 * length (0 for an empty value), or one of the following negative error
 * codes, with *why set to a static sentence for the client:
 *   CUT_ERR_NOT_FOUND  there is no HTTP2-Settings field
 *   CUT_ERR_PARSE      more than one field, not base64url, or not whole settings
 *   CUT_ERR_RANGE      too large, or a setting has a value out of its range
 */
int px_h2c_settings(const struct px_headers *h, uint8_t *out, size_t cap, const char **why);

#endif
