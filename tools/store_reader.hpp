#pragma once
// Read-only access to meshhook-consumer's store (SQLite file or PostgreSQL)
// for `meshhook state`. Deliberately separate from the consumer's Store:
// inspecting must never create a database, migrate a schema or take the
// relay lock.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::tools {

using Cell = std::optional<std::string>;  // NULL is nullopt
using Row = std::vector<Cell>;

class StoreReader {
public:
    virtual ~StoreReader() = default;
    // $1..$n placeholders in both dialects; parameters are text.
    virtual std::vector<Row> query(const std::string& sql,
                                   const std::vector<std::string>& params) = 0;
    virtual std::string_view kind() const = 0;
};

// "sqlite:///abs/path.db", "sqlite://relative.db", "postgresql://..." or
// "postgres://...". Throws std::runtime_error with one line when the URL is
// malformed, the store cannot be opened or reached, or it is not a meshhook
// store. Never creates anything.
std::unique_ptr<StoreReader> open_store_reader(const std::string& url);

// The URL with any password replaced by "***", for messages.
std::string redact_url(const std::string& url);

}  // namespace meshhook::tools
