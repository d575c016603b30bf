/* tboard — TensorBoard event files (--tensorboard DIR), written without TensorFlow.
 *
 * DIR/events.out.tfevents.<unix time>.<host> is a TFRecord file: each record is
 *
 *   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
 *
 * all little-endian, where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 and crc32c is
 * the Castagnoli CRC. Each record's data is one serialized tensorflow.Event protobuf:
 *
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
 *             Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 *
 * The first record is Event{wall_time, file_version: "brain.Event:2"}; every scalar after
 * it is Event{wall_time, step, summary{value{tag, simple_value}}}. The protobuf wire format
 * is written by hand here (varints, length-delimited fields, fixed64/fixed32). */
#ifndef CLTRAIN_TBOARD_H
#define CLTRAIN_TBOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct tboard tboard;

/* Creates `dir` (and its parents) when missing and a new event file in it, then writes
 * the file_version record. Returns 0, or -1 with errno set. Free with tboard_close. */
int tboard_open(const char *dir, tboard **out);

/* The path of the event file (owned by `tb`). */
const char *tboard_path(const tboard *tb);

/* Appends one scalar; `value` is stored as float, as TensorBoard keeps it. `wall_time` is
 * seconds since the Unix epoch; pass a negative value for "now". The record is flushed so
 * a running TensorBoard sees it. Returns 0, or -1 with errno set. */
int tboard_scalar(tboard *tb, const char *tag, long long step, double value, double wall_time);

/* Closes the file; returns 0, or -1 with errno set when an earlier write or the close
 * failed. NULL is allowed. */
int tboard_close(tboard *tb);

/* ---- the encoding, exposed for tests ---- */

/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) of n bytes, continuing from `crc`
 * (0 to start): tboard_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t tboard_crc32c(uint32_t crc, const void *data, size_t n);
/* TFRecord's masked CRC of n bytes. */
uint32_t tboard_masked_crc32c(const void *data, size_t n);

/* Serializes an Event into buf (cap bytes) and returns its length, or 0 when it does not
 * fit. file_version != NULL gives the file-version event (tag and value unused);
 * otherwise a scalar event. */
size_t tboard_encode_event(uint8_t *buf, size_t cap, double wall_time, long long step,
                           const char *file_version, const char *tag, float value);

/* Frames `n` bytes of data as one TFRecord into buf (needs n + 16 bytes); returns n + 16,
 * or 0 when it does not fit. */
size_t tboard_frame_record(uint8_t *buf, size_t cap, const uint8_t *data, size_t n);

#endif
