#pragma once
// Internal to the store: a minimal SQL connection that SQLite and libpq both
// implement, so the store's SQL is written once. Placeholders are $1..$n in
// both dialects (SQLite binds them by name).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace meshhook::consumer::sql {

using Param = std::variant<std::monostate, std::int64_t, std::string_view>;
using Cell = std::optional<std::string>;

struct Result {
    std::vector<std::vector<Cell>> rows;
    std::int64_t affected = 0;
};

class Connection {
public:
    virtual ~Connection() = default;
    // Several statements, no parameters (schema migrations).
    virtual void exec_script(std::string_view sql) = 0;
    // Prepared once per connection (cached by text), then reused.
    virtual Result query(std::string_view sql, std::span<const Param> params) = 0;
    virtual void begin() = 0;  // a write transaction
    virtual void commit() = 0;
    virtual void rollback() noexcept = 0;
    // Serialises concurrent migrations (inside the migration's transaction).
    virtual void lock_migrations() = 0;
    virtual bool try_relay_lock() = 0;
    virtual std::string identity_column() const = 0;
    virtual std::string_view kind() const = 0;
};

// Lets the statement caches find a std::string key by string_view.
struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Neither store holds a NUL byte or invalid UTF-8 in text (PostgreSQL cannot,
// and libpq would cut a parameter at its first NUL; SQLite could, so it is
// refused there too, so that both stores give one answer): such a parameter
// fails its statement with StoreError::Kind::kStatement. Returns the reason,
// or nullptr when the text can be stored.
const char* unstorable_text(std::string_view text);

// kReadOnly: SQLite opens the file read-only (never creates it) and sets no
// pragma; PostgreSQL gives up after 5 s unless the URL sets connect_timeout,
// and every transaction of the session is read-only.
enum class Access : std::uint8_t { kReadWrite, kReadOnly };

std::unique_ptr<Connection> open_sqlite(const std::string& path,
                                        Access access = Access::kReadWrite);
std::unique_ptr<Connection> open_postgres(const std::string& url,
                                          Access access = Access::kReadWrite);

}  // namespace meshhook::consumer::sql
