// SQLite behind sql::Connection: WAL journal, synchronous=FULL (a committed
// credit must survive power loss, not only a process crash), statements
// prepared once and reused.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <unordered_map>

#include "consumer/sql.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer::sql {

namespace {

// The data of this statement, not the database, is at fault: a constraint
// (a trigger's RAISE included), a value over SQLITE_MAX_LENGTH, a type
// mismatch. Busy, locked, I/O, full, read-only, corrupt: the store's trouble.
StoreError::Kind kind_of(int rc) {
    switch (rc & 0xFF) {
        case SQLITE_CONSTRAINT:
        case SQLITE_TOOBIG:
        case SQLITE_MISMATCH: return StoreError::Kind::kStatement;
        default: return StoreError::Kind::kUnavailable;
    }
}

class SqliteConnection final : public Connection {
public:
    SqliteConnection(const std::string& path, Access access) : path_(path) {
        const int flags = access == Access::kReadOnly ? SQLITE_OPEN_READONLY
                                                      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc != SQLITE_OK) {
            std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            throw StoreError("cannot open SQLite database '" + path + "': " + message);
        }
        // Another connection (the relay's) may hold the write lock briefly.
        sqlite3_busy_timeout(db_, 10000);
        if (access == Access::kReadWrite) {
            exec_script("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
        }
    }

    ~SqliteConnection() override {
        for (auto& [text, stmt] : statements_) {
            sqlite3_finalize(stmt.handle);
        }
        sqlite3_close(db_);
        if (lock_fd_ >= 0) {
            ::close(lock_fd_);
        }
    }

    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;

    void exec_script(std::string_view sql) override {
        char* error = nullptr;
        const std::string text(sql);  // sqlite3_exec wants a C string
        if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
            std::string message = error != nullptr ? error : "unknown error";
            sqlite3_free(error);
            throw StoreError("SQLite: " + message);
        }
    }

    Result query(std::string_view sql, std::span<const Param> params) override {
        Statement& stmt = prepare(sql);
        sqlite3_stmt* s = stmt.handle;
        struct Reset {
            sqlite3_stmt* s;
            ~Reset() {
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
            }
        } reset{s};
        if (params.size() != stmt.indexes.size()) {
            throw StoreError("SQLite: parameter count mismatch for: " + std::string(sql));
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            const int index = stmt.indexes[i];
            int rc = SQLITE_OK;
            if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
                rc = sqlite3_bind_int64(s, index, *n);
            } else if (const auto* t = std::get_if<std::string_view>(&params[i])) {
                if (const char* why = unstorable_text(*t)) {
                    throw StoreError(std::string("SQLite: refused ") + why,
                                     StoreError::Kind::kStatement);
                }
                // The view outlives the step below: no copy needed.
                rc = sqlite3_bind_text64(s, index, t->data() != nullptr ? t->data() : "", t->size(),
                                         SQLITE_STATIC, SQLITE_UTF8);
            } else {
                rc = sqlite3_bind_null(s, index);
            }
            if (rc != SQLITE_OK) {
                throw StoreError(std::string("SQLite bind: ") + sqlite3_errmsg(db_), kind_of(rc));
            }
        }
        Result result;
        for (;;) {
            const int rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) {
                const int columns = sqlite3_column_count(s);
                std::vector<Cell> row;
                row.reserve(static_cast<std::size_t>(columns));
                for (int c = 0; c < columns; ++c) {
                    if (sqlite3_column_type(s, c) == SQLITE_NULL) {
                        row.emplace_back(std::nullopt);
                    } else {
                        const auto* text = sqlite3_column_text(s, c);
                        const int size = sqlite3_column_bytes(s, c);
                        row.emplace_back(std::string(reinterpret_cast<const char*>(text),
                                                     static_cast<std::size_t>(size)));
                    }
                }
                result.rows.push_back(std::move(row));
            } else if (rc == SQLITE_DONE) {
                result.affected = sqlite3_changes64(db_);
                return result;
            } else {
                throw StoreError(std::string("SQLite: ") + sqlite3_errmsg(db_), kind_of(rc));
            }
        }
    }

    // IMMEDIATE takes the write lock up front, so a batch never fails halfway
    // on a lock upgrade.
    void begin() override { exec_script("BEGIN IMMEDIATE"); }
    void commit() override { exec_script("COMMIT"); }
    void rollback() noexcept override {
        if (sqlite3_get_autocommit(db_) == 0) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
    void lock_migrations() override {}  // BEGIN IMMEDIATE already serialises

    bool try_relay_lock() override {
        if (lock_fd_ >= 0) {
            return true;
        }
        const std::string lock_path = path_ + ".relay-lock";
        const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            throw StoreError("cannot open relay lock file '" + lock_path + "'");
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);
            return false;
        }
        lock_fd_ = fd;
        return true;
    }

    std::string identity_column() const override { return "INTEGER PRIMARY KEY AUTOINCREMENT"; }
    std::string_view kind() const override { return "sqlite"; }

private:
    struct Statement {
        sqlite3_stmt* handle = nullptr;
        std::vector<int> indexes;  // index of $1, $2, ... in the statement
    };

    Statement& prepare(std::string_view sql) {
        if (auto it = statements_.find(sql); it != statements_.end()) {
            return it->second;
        }
        Statement stmt;
        if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                               SQLITE_PREPARE_PERSISTENT, &stmt.handle, nullptr) != SQLITE_OK) {
            throw StoreError(std::string("SQLite prepare: ") + sqlite3_errmsg(db_));
        }
        const int count = sqlite3_bind_parameter_count(stmt.handle);
        for (int i = 1; i <= count; ++i) {
            const std::string name = "$" + std::to_string(i);
            const int index = sqlite3_bind_parameter_index(stmt.handle, name.c_str());
            if (index == 0) {
                sqlite3_finalize(stmt.handle);
                throw StoreError("SQLite: placeholders must be $1..$n: " + std::string(sql));
            }
            stmt.indexes.push_back(index);
        }
        return statements_.emplace(std::string(sql), stmt).first->second;
    }

    std::string path_;
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, Statement, SqlHash, std::equal_to<>> statements_;
    int lock_fd_ = -1;
};

}  // namespace

std::unique_ptr<Connection> open_sqlite(const std::string& path, Access access) {
    return std::make_unique<SqliteConnection>(path, access);
}

}  // namespace meshhook::consumer::sql
