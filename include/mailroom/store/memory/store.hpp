// An in-memory message store: for tests, and for embedders that keep mail elsewhere and want
// the IMAP/POP3 servers over a simple reference backend. Everything is lost with the object.
//
// Thread-safe; views may live on different threads. "Durable" means "in this process".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "mailroom/store/store.hpp"

namespace mailroom::store::memory {

struct options {
  bool create_accounts = true;       ///< open_account() makes unknown users an empty INBOX
  std::uint64_t storage_limit = 0;   ///< per account, octets; 0 = unlimited
  std::uint64_t messages_limit = 0;  ///< per account; 0 = unlimited
};

class store final : public message_store {
 public:
  explicit store(options opts = {});
  ~store() override;

  task<result<std::shared_ptr<account>>> open_account(std::string_view user) override;
  /// Scans every account (all in memory).
  task<result<std::vector<shared_mailbox>>> shared_with(std::string_view user) override;
  /// Creates an account (with INBOX) if it does not exist.
  void add_account(std::string_view user);

  struct account_data;

 private:
  options opts_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<account_data>, std::less<>> accounts_;
};

}  // namespace mailroom::store::memory
