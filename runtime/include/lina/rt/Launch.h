//===- Launch.h - Where this process runs in the job ------------*- C++ -*-===//
//
// Part of the Lina project.
//
// What a rank knows of its place in the job beyond its MPI rank: its rank
// among the job's processes on its node (which picks a rank's GPU, see
// docs/LAUNCH.md) and the node's host name (lina-run's start-up report).
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_LAUNCH_H
#define LINA_RT_LAUNCH_H

#include <string>

namespace lina::rt {

/// This process's rank on its node: OMPI_COMM_WORLD_LOCAL_RANK,
/// MPI_LOCALRANKID or SLURM_LOCALID if set, else (MPI initialised) its rank
/// in MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), which is collective over
/// MPI_COMM_WORLD, else 0.
int localRank();

/// This machine's host name ("unknown" if the system cannot say).
std::string hostName();

} // namespace lina::rt

#endif // LINA_RT_LAUNCH_H
