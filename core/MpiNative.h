// Internal: the native MPI handle behind a Communicator, for the io layer's parallel HDF5.
// Include only from .cpp files that must talk to an MPI-aware library.
#pragma once

#include <mpi.h>

#include "core/Communicator.h"

namespace drp {

struct Communicator::Impl {
    MPI_Comm comm = MPI_COMM_NULL;
    bool owned = false;
    ~Impl() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owned && !finalized && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    }
};

/// MPI_COMM_SELF for a serial communicator.
inline MPI_Comm nativeComm(const Communicator& c) { return c.impl() ? c.impl()->comm : MPI_COMM_SELF; }

}  // namespace drp
