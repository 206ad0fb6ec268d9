// Loaded with LD_PRELOAD into a dynamo-node under test: while the file named
// by DYNAMO_TEST_FAIL_SYNC_WHILE exists, fsync and fdatasync fail with EIO, as
// on a failing disk, so that a real process meets a failed sync without a
// failing device.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace {

bool Failing() {
  const char* trigger = std::getenv("DYNAMO_TEST_FAIL_SYNC_WHILE");
  return trigger != nullptr && access(trigger, F_OK) == 0;
}

int CallReal(const char* name, int fd) {
  auto* real = reinterpret_cast<int (*)(int)>(dlsym(RTLD_NEXT, name));
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd);
}

}  // namespace

extern "C" int fsync(int fd) {
  if (Failing()) {
    errno = EIO;
    return -1;
  }
  return CallReal("fsync", fd);
}

extern "C" int fdatasync(int fd) {
  if (Failing()) {
    errno = EIO;
    return -1;
  }
  return CallReal("fdatasync", fd);
}
