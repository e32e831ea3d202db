// PostgreSQL (libpq) behind sql::Connection: statements prepared once per
// session, parameters sent as text and typed by the server, a session
// advisory lock for the single active relay.

#include <libpq-fe.h>

#include <array>
#include <unordered_map>

#include "consumer/sql.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer::sql {

namespace {

// Arbitrary but fixed keys: every meshhook consumer on a database agrees on them.
constexpr std::string_view kRelayLockSql = "SELECT pg_try_advisory_lock(7306821, 1)";
constexpr std::string_view kMigrationLockSql = "SELECT pg_advisory_xact_lock(7306821, 2)";

std::string first_line(const char* text) {
    std::string s = text != nullptr ? text : "";
    if (const auto nl = s.find('\n'); nl != std::string::npos) {
        s.resize(nl);
    }
    return s;
}

// SQLSTATE classes where this statement's data is at fault: 22 data
// exception (invalid encoding, value too long, out of range), 23 integrity
// constraint, 54 program limit (an index row too large), P0 raised by a
// PL/pgSQL function (a trigger). Everything else, no SQLSTATE at all (the
// connection broke) included, is the store's trouble: 08 connection, 40
// serialisation or deadlock, 53 resources, 57 shutdown, 42 our own SQL.
StoreError::Kind kind_of(const char* sqlstate) {
    if (sqlstate == nullptr) {
        return StoreError::Kind::kUnavailable;
    }
    const std::string_view s(sqlstate);
    for (const std::string_view c : {"22", "23", "54", "P0"}) {
        if (s.starts_with(c)) {
            return StoreError::Kind::kStatement;
        }
    }
    return StoreError::Kind::kUnavailable;
}

void ignore_notice(void* /*arg*/, const char* /*message*/) {}

class PgResult {
public:
    explicit PgResult(PGresult* r) : r_(r) {}
    ~PgResult() { PQclear(r_); }
    PgResult(const PgResult&) = delete;
    PgResult& operator=(const PgResult&) = delete;
    PGresult* get() const { return r_; }

private:
    PGresult* r_;
};

class PostgresConnection final : public Connection {
public:
    PostgresConnection(const std::string& url, Access access)
        : conn_(connect(url, access)), read_only_(access == Access::kReadOnly) {
        if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
            std::string message =
                conn_ != nullptr ? first_line(PQerrorMessage(conn_)) : "out of memory";
            PQfinish(conn_);
            conn_ = nullptr;
            throw StoreError("cannot connect to PostgreSQL store " + redact_store_url(url) + ": " +
                             message);
        }
        // "relation already exists, skipping" and friends are not news.
        PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
        session_started();
    }

    ~PostgresConnection() override { PQfinish(conn_); }
    PostgresConnection(const PostgresConnection&) = delete;
    PostgresConnection& operator=(const PostgresConnection&) = delete;

    void exec_script(std::string_view sql) override {
        ensure_connected();
        PgResult r(PQexec(conn_, std::string(sql).c_str()));
        check(r.get(), sql);
    }

    Result query(std::string_view sql, std::span<const Param> params) override {
        ensure_connected();
        const std::string& name = prepare(sql, params.size());
        std::vector<std::string> numbers(params.size());
        std::vector<const char*> values(params.size(), nullptr);
        std::vector<int> lengths(params.size(), 0);
        std::vector<std::string> texts(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
                numbers[i] = std::to_string(*n);
                values[i] = numbers[i].c_str();
            } else if (const auto* t = std::get_if<std::string_view>(&params[i])) {
                // Text-format parameters are NUL-terminated strings for libpq:
                // one with a NUL inside would be cut there, silently.
                if (const char* why = unstorable_text(*t)) {
                    throw StoreError(std::string("PostgreSQL: refused ") + why,
                                     StoreError::Kind::kStatement);
                }
                texts[i] = std::string(*t);
                values[i] = texts[i].c_str();
            }
        }
        PgResult r(PQexecPrepared(conn_, name.c_str(), static_cast<int>(params.size()),
                                  values.data(), nullptr, nullptr, 0));
        check(r.get(), sql);
        Result result;
        if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
            const int rows = PQntuples(r.get());
            const int columns = PQnfields(r.get());
            result.rows.reserve(static_cast<std::size_t>(rows));
            for (int i = 0; i < rows; ++i) {
                std::vector<Cell> row;
                row.reserve(static_cast<std::size_t>(columns));
                for (int c = 0; c < columns; ++c) {
                    if (PQgetisnull(r.get(), i, c) != 0) {
                        row.emplace_back(std::nullopt);
                    } else {
                        row.emplace_back(
                            std::string(PQgetvalue(r.get(), i, c),
                                        static_cast<std::size_t>(PQgetlength(r.get(), i, c))));
                    }
                }
                result.rows.push_back(std::move(row));
            }
        }
        const char* tuples = PQcmdTuples(r.get());
        if (tuples != nullptr && *tuples != '\0') {
            result.affected = std::stoll(tuples);
        }
        return result;
    }

    void begin() override { exec_script("BEGIN"); }
    void commit() override { exec_script("COMMIT"); }
    void rollback() noexcept override {
        if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK &&
            PQtransactionStatus(conn_) != PQTRANS_IDLE) {
            PQclear(PQexec(conn_, "ROLLBACK"));
        }
    }
    void lock_migrations() override { exec_script(kMigrationLockSql); }

    bool try_relay_lock() override {
        if (relay_locked_) {
            // The lock lives as long as the session; a reset session lost it.
            if (PQstatus(conn_) == CONNECTION_OK && !reset_since_lock_) {
                return true;
            }
            relay_locked_ = false;
        }
        const Result r = query(kRelayLockSql, {});
        relay_locked_ = !r.rows.empty() && r.rows[0][0] == std::optional<std::string>("t");
        reset_since_lock_ = false;
        return relay_locked_;
    }

    std::string identity_column() const override {
        return "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
    }
    std::string_view kind() const override { return "postgresql"; }

private:
    // The URL's own connect_timeout wins over the read-only default: keywords
    // before the expanded "dbname" are overridden by the URL's.
    static PGconn* connect(const std::string& url, Access access) {
        if (access == Access::kReadWrite) {
            return PQconnectdb(url.c_str());
        }
        const std::array<const char*, 3> keys{"connect_timeout", "dbname", nullptr};
        const std::array<const char*, 3> values{"5", url.c_str(), nullptr};
        return PQconnectdbParams(keys.data(), values.data(), 1);
    }

    // A read-only session's setting dies with the session, like prepared
    // statements: set again on every (re)connection.
    void session_started() {
        if (read_only_) {
            exec_script("SET default_transaction_read_only = on");
        }
    }

    // A dropped session is re-established on next use; prepared statements
    // (and any advisory lock) died with it.
    void ensure_connected() {
        if (PQstatus(conn_) == CONNECTION_OK) {
            return;
        }
        PQreset(conn_);
        statements_.clear();
        reset_since_lock_ = true;
        if (PQstatus(conn_) != CONNECTION_OK) {
            throw StoreError("PostgreSQL connection lost: " + first_line(PQerrorMessage(conn_)));
        }
        session_started();
    }

    const std::string& prepare(std::string_view sql, std::size_t param_count) {
        if (auto it = statements_.find(sql); it != statements_.end()) {
            return it->second;
        }
        std::string name = "meshhook_" + std::to_string(statements_.size() + 1);
        PgResult r(PQprepare(conn_, name.c_str(), std::string(sql).c_str(),
                             static_cast<int>(param_count), nullptr));
        check(r.get(), sql);
        return statements_.emplace(std::string(sql), std::move(name)).first->second;
    }

    void check(PGresult* r, std::string_view sql) {
        const ExecStatusType status = PQresultStatus(r);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            return;
        }
        const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        std::string message = "PostgreSQL";
        if (state != nullptr) {
            message += " [";
            message += state;
            message += "]";
        }
        message +=
            ": " + first_line(r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
        if (sql.size() < 80) {
            message += " (" + std::string(sql) + ")";
        }
        throw StoreError(message, kind_of(state));
    }

    PGconn* conn_;
    bool read_only_;
    std::unordered_map<std::string, std::string, SqlHash, std::equal_to<>> statements_;
    bool relay_locked_ = false;
    bool reset_since_lock_ = false;
};

}  // namespace

std::unique_ptr<Connection> open_postgres(const std::string& url, Access access) {
    return std::make_unique<PostgresConnection>(url, access);
}

}  // namespace meshhook::consumer::sql
