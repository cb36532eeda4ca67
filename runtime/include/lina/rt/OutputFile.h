//===- OutputFile.h - Atomic, error-checked output files --------*- C++ -*-===//
//
// Part of the Lina project.
//
// Every file the runtime tools write (traces, calibrated clusters) goes
// through writeOutputFile: the contents are written to a temporary file in
// the destination's directory, flushed, and renamed over the destination
// only once everything was written. A failed write (a full disk, a missing
// directory, no permission) is an error naming the file and the reason, and
// leaves an existing file untouched. Destinations that are not regular files
// (/dev/stdout, a pipe, /dev/null) are written in place, still checked.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_OUTPUTFILE_H
#define LINA_RT_OUTPUTFILE_H

#include <stdexcept>
#include <string>

namespace lina::rt {

/// A file could not be written. The message names the file and the reason.
class OutputError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Writes `contents` to `path` atomically (see above); throws OutputError.
/// `what` names the file's purpose in messages ("trace", "cluster file").
void writeOutputFile(const std::string &path, const std::string &contents,
                     const std::string &what);

} // namespace lina::rt

#endif // LINA_RT_OUTPUTFILE_H
