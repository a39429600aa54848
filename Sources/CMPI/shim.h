// OpenMPI's handles are cast macros over ompi_mpi_* globals; Swift imports neither.
// These one-line functions hand them to Swift.
#ifndef RMTRAIN_CMPI_SHIM_H
#define RMTRAIN_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm rm_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype rm_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype rm_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype rm_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype rm_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype rm_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype rm_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Info rm_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Op rm_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op rm_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op rm_mpi_min(void) { return MPI_MIN; }
static inline void *rm_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *rm_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request rm_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline int rm_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline MPI_Datatype rm_mpi_uint16(void) { return MPI_UINT16_T; }

/// bfloat16 <-> float32 as `Kernels/BFloat16.swift` (round to nearest even; NaN stays a quiet NaN).
static inline float rm_bf16_to_float(unsigned short h) {
    union { unsigned int u; float f; } v = { (unsigned int)h << 16 };
    return v.f;
}
static inline unsigned short rm_float_to_bf16(float f) {
    union { float f; unsigned int u; } v = { f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((v.u >> 16) | 0x40);
    return (unsigned short)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
/// MPI_Op body for `--allreduce-dtype bf16`: inout[i] = bf16(float(in[i]) + float(inout[i])), as PyTorch
/// DDP's bf16_compress_hook sums on the wire (each partial sum rounded to bfloat16).
static void rm_bf16_sum_fn(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const unsigned short *a = (const unsigned short *)in;
    unsigned short *b = (unsigned short *)inout;
    for (int i = 0; i < *len; i++) b[i] = rm_float_to_bf16(rm_bf16_to_float(a[i]) + rm_bf16_to_float(b[i]));
}
/// The bf16 sum op, created on first use (after MPI_Init), commutative as float addition is.
static inline MPI_Op rm_mpi_bf16_sum(void) {
    static MPI_Op op = MPI_OP_NULL;
    if (op == MPI_OP_NULL) MPI_Op_create(rm_bf16_sum_fn, 1, &op);
    return op;
}
#endif
