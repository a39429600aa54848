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
#endif
