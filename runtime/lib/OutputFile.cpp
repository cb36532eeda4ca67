//===- OutputFile.cpp - Atomic, error-checked output files ----------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/OutputFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace lina::rt;

namespace {
[[noreturn]] void failWrite(const std::string &what, const std::string &path,
                            const std::string &action, int error) {
  throw OutputError("cannot write " + what + " '" + path + "': " + action +
                    ": " + std::strerror(error));
}

/// Writes all of `contents` to `fd`; returns 0 or the errno of the failure.
int writeAll(int fd, const std::string &contents) {
  const char *p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return ENOSPC;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

/// The directory part of `path` ("." when it has none).
std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}
} // namespace

void lina::rt::writeOutputFile(const std::string &path,
                               const std::string &contents,
                               const std::string &what) {
  if (path.empty())
    throw OutputError("cannot write " + what + ": empty file name");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device, a pipe or a terminal: nothing to replace atomically.
    if (S_ISDIR(st.st_mode))
      failWrite(what, path, "opening it", EISDIR);
    int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
      failWrite(what, path, "opening it", errno);
    int err = writeAll(fd, contents);
    if (err == 0 && ::fsync(fd) != 0 && errno != EINVAL && errno != EROFS &&
        errno != ENOTSUP)
      err = errno;
    if (::close(fd) != 0 && err == 0)
      err = errno;
    if (err)
      failWrite(what, path, "writing", err);
    return;
  }

  // A temporary file next to the destination, so that rename() is atomic.
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string dir = directoryOf(path);
  std::string tmpl = (dir == "/" ? "" : dir) + "/." + base + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0)
    failWrite(what, path, "creating a temporary file in '" + dir + "'", errno);
  std::string tmp(name.data());
  int err = writeAll(fd, contents);
  if (err == 0 && ::fsync(fd) != 0)
    err = errno;
  // Output files are ordinary user files: rw for everyone the umask allows.
  if (err == 0) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    if (::fchmod(fd, 0666 & ~mask) != 0)
      err = errno;
  }
  if (::close(fd) != 0 && err == 0)
    err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    failWrite(what, path, "writing", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    failWrite(what, path, "renaming the temporary file over it", err);
  }
}
