#include "info_log.h"

#include <pthread.h>
#include <sys/time.h>

#include <cstdio>
#include <ctime>
#include <utility>
#include <vector>

namespace dynamo::storage {
namespace {

std::string OldName(const std::string& path, size_t k) {
  return path + ".old." + std::to_string(k);
}

}  // namespace

// Old logs beyond the ones kept, among them RocksDB's own (LOG.old.<time>)
// from before this logger.
void InfoLog::DeleteSurplus() {
  std::vector<std::string> children;
  if (!fs_->GetChildren(dir_, rocksdb::IOOptions(), &children, nullptr).ok()) return;
  const std::string prefix = "LOG.old.";
  for (const std::string& name : children) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string suffix = name.substr(prefix.size());
    if (suffix.empty() || suffix.size() > 19 ||
        suffix.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    if (std::stoull(suffix) > old_files_max_) {
      fs_->DeleteFile(dir_ + "/" + name, rocksdb::IOOptions(), nullptr).PermitUncheckedError();
    }
  }
}

InfoLog::InfoLog(std::shared_ptr<rocksdb::FileSystem> fs, std::string dir, size_t file_bytes_max,
                 size_t old_files_max, rocksdb::InfoLogLevel level)
    : rocksdb::Logger(level),
      fs_(std::move(fs)),
      dir_(std::move(dir)),
      path_(dir_ + "/LOG"),
      file_bytes_max_(file_bytes_max),
      old_files_max_(old_files_max) {
  std::lock_guard<std::mutex> lock(mu_);
  DeleteSurplus();
  RollOver();  // each start begins a new LOG, as RocksDB's own logger does
  EnsureOpen();
}

InfoLog::~InfoLog() { Close().PermitUncheckedError(); }

rocksdb::Status InfoLog::CloseImpl() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_for_good_ = true;
  if (file_ == nullptr) return rocksdb::Status::OK();
  rocksdb::IOStatus status = file_->Close(rocksdb::IOOptions(), nullptr);
  file_.reset();
  return status;
}

void InfoLog::RollOver() {
  const rocksdb::IOOptions io;
  // An empty log (a start that failed before it wrote a line) is not worth
  // rolling the last useful one away for.
  uint64_t size = 0;
  if (fs_->GetFileSize(path_, io, &size, nullptr).ok() && size == 0) return;
  // Renames and deletes need no free space: they work on a full disk too.
  if (old_files_max_ == 0) {
    fs_->DeleteFile(path_, io, nullptr).PermitUncheckedError();
    return;
  }
  fs_->DeleteFile(OldName(path_, old_files_max_), io, nullptr).PermitUncheckedError();
  for (size_t k = old_files_max_ - 1; k >= 1; --k) {
    fs_->RenameFile(OldName(path_, k), OldName(path_, k + 1), io, nullptr).PermitUncheckedError();
  }
  fs_->RenameFile(path_, OldName(path_, 1), io, nullptr).PermitUncheckedError();
}

bool InfoLog::EnsureOpen() {
  if (file_ != nullptr) return true;
  size_ = 0;
  return fs_->NewWritableFile(path_, rocksdb::FileOptions(), &file_, nullptr).ok();
}

void InfoLog::Logv(const char* format, va_list ap) {
  // "2026/12/06-14:45:00.123456 7f12ab <message>", RocksDB's own layout.
  timeval now{};
  gettimeofday(&now, nullptr);
  tm t{};
  localtime_r(&now.tv_sec, &t);
  char prefix[64];
  const int prefix_size = std::snprintf(
      prefix, sizeof prefix, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %llx ", t.tm_year + 1900,
      t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>(now.tv_usec),
      static_cast<unsigned long long>(pthread_self()));
  va_list copy;
  va_copy(copy, ap);
  const int body_size = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (prefix_size < 0 || body_size < 0) return;
  std::string line(prefix, static_cast<size_t>(prefix_size));
  line.resize(line.size() + static_cast<size_t>(body_size) + 1);
  std::vsnprintf(line.data() + prefix_size, static_cast<size_t>(body_size) + 1, format, ap);
  line.back() = '\n';  // vsnprintf's terminating NUL
  // RocksDB ends some messages with their own newline.
  if (line.size() >= 2 && line[line.size() - 2] == '\n') line.pop_back();

  std::lock_guard<std::mutex> lock(mu_);
  if (closed_for_good_ || !EnsureOpen()) {
    ++lines_lost_;
    return;
  }
  if (!file_->Append(line, rocksdb::IOOptions(), nullptr).ok()) {
    ++lines_lost_;
    return;
  }
  size_ += line.size();
  if (size_ >= file_bytes_max_) {
    file_->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
    file_.reset();
    RollOver();
    EnsureOpen();
  }
}

size_t InfoLog::GetLogFileSize() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

size_t InfoLog::lines_lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_lost_;
}

}  // namespace dynamo::storage
