#pragma once

// RocksDB's informational log (<db>/LOG), written so that a full disk loses
// log lines instead of the process. RocksDB's own logger appends through a
// buffered file writer that, in a build with assertions (Debian's), aborts on
// the first line after a failed write: a node restarted on a full disk died
// in DB::Open before it could say why. This one hands each line to the file
// system at once and forgets a line it could not write.

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cstdarg>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

namespace dynamo::storage {

class InfoLog : public rocksdb::Logger {
 public:
  // Starts <dir>/LOG; the previous LOG becomes LOG.old.1 (and LOG.old.k,
  // LOG.old.k+1), at most `old_files_max` of them kept. The log rolls over
  // the same way once it passes `file_bytes_max`. A log that cannot be
  // created (a full disk) stays closed and tries again at the next line.
  InfoLog(std::shared_ptr<rocksdb::FileSystem> fs, std::string dir, size_t file_bytes_max,
          size_t old_files_max, rocksdb::InfoLogLevel level = rocksdb::InfoLogLevel::INFO_LEVEL);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  size_t GetLogFileSize() const override;
  // Lines lost to failed writes since the start.
  size_t lines_lost() const;

 protected:
  rocksdb::Status CloseImpl() override;

 private:
  // All with mu_ held.
  void DeleteSurplus();
  void RollOver();
  bool EnsureOpen();

  const std::shared_ptr<rocksdb::FileSystem> fs_;
  const std::string dir_;
  const std::string path_;  // dir_/LOG
  const size_t file_bytes_max_;
  const size_t old_files_max_;

  mutable std::mutex mu_;
  std::unique_ptr<rocksdb::FSWritableFile> file_;  // guarded by mu_; null while closed
  size_t size_ = 0;                                // guarded by mu_
  size_t lines_lost_ = 0;                          // guarded by mu_
  bool closed_for_good_ = false;                   // guarded by mu_
};

}  // namespace dynamo::storage
