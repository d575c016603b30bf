/* cltrain/status.h — status codes and the last error message.
 *
 * Every fallible call returns a ct_status. Negative values from -1 to -1999 are
 * OpenCL's own codes (CL_OUT_OF_RESOURCES is -5 here too) and CLBlast's
 * (-1024..-2050) pass through unchanged; the library's own codes live at -3000 and
 * below so the three ranges never collide.
 */
#ifndef CLTRAIN_STATUS_H
#define CLTRAIN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int ct_status;

enum {
    CT_SUCCESS = 0,
    CT_ERR_INVALID_ARG = -3001,   /* a NULL handle, a value out of range, a bad option */
    CT_ERR_OUT_OF_MEMORY = -3002, /* host allocation failed, or a device size limit */
    CT_ERR_IO = -3003,            /* open/read/write/rename failed; message names the path */
    CT_ERR_FORMAT = -3004,        /* a file's contents are not what its format requires */
    CT_ERR_NOT_FOUND = -3005,     /* no such device, kernel file, kernel or key */
    CT_ERR_BUILD = -3006,         /* an OpenCL program failed to build; message has the log */
    CT_ERR_UNSUPPORTED = -3007,   /* valid request this build or device cannot do */
    CT_ERR_SHAPE = -3008,         /* tensor shapes or sizes disagree */
    CT_ERR_NUMERIC = -3009,       /* NaN or Inf where a finite value is required */
    CT_ERR_NO_DEVICE = -3010,     /* no OpenCL platform or device on this machine */
    CT_ERR_INTERNAL = -3011       /* a broken invariant inside the library */
};

/* Name of a status: "CT_SUCCESS", "CL_INVALID_WORK_GROUP_SIZE", "CLBlastInvalidLeadDimA"... */
const char *ct_status_str(ct_status status);

/* Human-readable text of the last error recorded on the calling thread: what failed,
 * where, with which value. Valid until the next failing call on that thread. Never NULL. */
const char *ct_last_error(void);

/* Forget the last error (for callers that recover from one and go on). */
void ct_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
