#include "tools/store_reader.hpp"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "consumer/store.hpp"

namespace meshhook::tools {
namespace {

class SqliteReader final : public StoreReader {
public:
    explicit SqliteReader(const std::string& path) {
        // READONLY: a mistyped path must not leave an empty database behind.
        const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
        if (rc != SQLITE_OK) {
            const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            throw std::runtime_error("cannot open SQLite store " + path + ": " + why);
        }
        sqlite3_busy_timeout(db_, 5000);
    }
    ~SqliteReader() override { sqlite3_close(db_); }

    std::vector<Row> query(const std::string& sql,
                           const std::vector<std::string>& params) override {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr) !=
            SQLITE_OK) {
            throw std::runtime_error(std::string("SQLite: ") + sqlite3_errmsg(db_));
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            const std::string name = "$" + std::to_string(i + 1);
            const int index = sqlite3_bind_parameter_index(stmt, name.c_str());
            if (index > 0) {
                sqlite3_bind_text(stmt, index, params[i].data(), static_cast<int>(params[i].size()),
                                  SQLITE_TRANSIENT);
            }
        }
        std::vector<Row> rows;
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            Row row;
            const int n = sqlite3_column_count(stmt);
            for (int c = 0; c < n; ++c) {
                if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
                    row.emplace_back();
                } else {
                    const auto* text = sqlite3_column_text(stmt, c);
                    row.emplace_back(
                        std::string(reinterpret_cast<const char*>(text),
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt, c))));
                }
            }
            rows.push_back(std::move(row));
        }
        const std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
        sqlite3_finalize(stmt);
        if (!error.empty()) throw std::runtime_error("SQLite: " + error);
        return rows;
    }
    std::string_view kind() const override { return "sqlite"; }

private:
    sqlite3* db_ = nullptr;
};

class PostgresReader final : public StoreReader {
public:
    explicit PostgresReader(const std::string& url) {
        // A short connect timeout unless the URL sets one: an unreachable
        // host should be reported in seconds.
        std::string conninfo = url;
        if (conninfo.find("connect_timeout") == std::string::npos) {
            conninfo += conninfo.find('?') == std::string::npos ? "?connect_timeout=5"
                                                                : "&connect_timeout=5";
        }
        conn_ = PQconnectdb(conninfo.c_str());
        if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
            std::string why = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
            while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
            for (auto& c : why) {
                if (c == '\n') c = ' ';
            }
            PQfinish(conn_);
            conn_ = nullptr;
            throw std::runtime_error("cannot connect to PostgreSQL store " + redact_url(url) +
                                     ": " + why);
        }
        // Belt and braces: this session cannot write.
        PGresult* r = PQexec(conn_, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
        PQclear(r);
    }
    ~PostgresReader() override { PQfinish(conn_); }

    std::vector<Row> query(const std::string& sql,
                           const std::vector<std::string>& params) override {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p.c_str());
        PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                   values.data(), nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            std::string why = PQresultErrorMessage(r);
            PQclear(r);
            while (!why.empty() && why.back() == '\n') why.pop_back();
            throw std::runtime_error("PostgreSQL: " + why);
        }
        std::vector<Row> rows;
        const int n = PQntuples(r);
        const int cols = PQnfields(r);
        for (int i = 0; i < n; ++i) {
            Row row;
            for (int c = 0; c < cols; ++c) {
                if (PQgetisnull(r, i, c)) {
                    row.emplace_back();
                } else {
                    row.emplace_back(std::string(PQgetvalue(r, i, c),
                                                 static_cast<std::size_t>(PQgetlength(r, i, c))));
                }
            }
            rows.push_back(std::move(row));
        }
        PQclear(r);
        return rows;
    }
    std::string_view kind() const override { return "postgresql"; }

private:
    PGconn* conn_ = nullptr;
};

}  // namespace

std::string redact_url(const std::string& url) {
    const auto scheme = url.find("://");
    const auto at = url.find('@');
    if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
    const auto colon = url.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::unique_ptr<StoreReader> open_store_reader(const std::string& url) {
    std::unique_ptr<StoreReader> reader;
    if (url.starts_with("sqlite://")) {
        const std::string path = url.substr(std::string_view("sqlite://").size());
        if (path.empty()) throw std::runtime_error("store URL " + url + " names no file");
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec)) {
            throw std::runtime_error("no SQLite store at " + path + " (" +
                                     (ec ? ec.message() : std::string("no such file")) + ")");
        }
        reader = std::make_unique<SqliteReader>(path);
    } else if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        reader = std::make_unique<PostgresReader>(url);
    } else {
        throw std::runtime_error("store URL must start with sqlite:// or postgresql:// (got \"" +
                                 redact_url(url) + "\")");
    }
    std::vector<Row> version;
    try {
        version = reader->query("SELECT version FROM meshhook_schema", {});
    } catch (const std::exception&) {
        throw std::runtime_error(redact_url(url) +
                                 " is not a meshhook store (no meshhook_schema table)");
    }
    if (version.empty() || !version[0][0]) {
        throw std::runtime_error(redact_url(url) +
                                 " is not a meshhook store (empty meshhook_schema)");
    }
    // The schema is the consumer's (consumer/store.cpp owns it): this reader
    // reads exactly the version that binary writes.
    if (*version[0][0] != std::to_string(consumer::kSchemaVersion)) {
        throw std::runtime_error(redact_url(url) + " has schema version " + *version[0][0] +
                                 "; this meshhook reads version " +
                                 std::to_string(consumer::kSchemaVersion) +
                                 " (start meshhook-consumer of this release on it to migrate)");
    }
    return reader;
}

}  // namespace meshhook::tools
