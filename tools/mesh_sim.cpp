#include "tools/mesh_sim.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <istream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/transfer_event.hpp"

namespace meshhook::tools {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view kListPath = "/api/v1/transfers/managed/mesh";
constexpr std::string_view kNetworksPath = "/api/v1/transfers/managed/networks";

struct SimTransfer {
    std::string id;
    std::string status;
    std::string amount;                         // JSON number text, written verbatim
    std::map<std::string, std::string> fields;  // symbol, networkName, hash, ...
    std::int64_t created_s = 0;
    std::int64_t executed_s = 0;  // 0: not executed
};

struct SimState {
    std::mutex mutex;
    std::vector<SimTransfer> transfers;  // in creation order
    std::string client_id;
    std::string client_secret;
    std::uint64_t rate_limit_every = 0;
    std::size_t max_count = 100;
    std::uint64_t requests = 0;
    std::uint64_t lookups = 0;             // answered requests with the Id filter
    std::map<int, std::uint64_t> answers;  // status -> count
};

std::string envelope(std::string_view status, std::string_view message, std::string_view content) {
    std::string out = "{\"status\":\"";
    out.append(status).append("\",\"message\":\"");
    common::append_json_escaped(out, message);
    out.append("\",\"displayMessage\":null,\"errorType\":");
    out.append(status == "ok" ? "null" : "\"" + std::string(status) + "\"");
    out.append(",\"errorData\":null,\"content\":").append(content).append("}");
    return out;
}

std::string percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        unsigned v = 0;
        if (text[i] == '%' && i + 2 < text.size() &&
            std::from_chars(text.data() + i + 1, text.data() + i + 3, v, 16).ptr ==
                text.data() + i + 3) {
            out += static_cast<char>(v);
            i += 2;
        } else {
            out += text[i] == '+' ? ' ' : text[i];
        }
    }
    return out;
}

std::map<std::string, std::string> query_params(std::string_view target) {
    std::map<std::string, std::string> out;
    const auto q = target.find('?');
    if (q == std::string_view::npos) return out;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        out[std::string(pair.substr(0, eq))] =
            eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return out;
}

std::optional<std::uint64_t> to_uint(const std::string& s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::string item_json(const SimTransfer& t) {
    std::string out = "{\"id\":\"";
    common::append_json_escaped(out, t.id);
    out += "\",\"status\":\"";
    common::append_json_escaped(out, t.status);
    out += "\"";
    for (const auto& [k, v] : t.fields) {
        out += ",\"";
        common::append_json_escaped(out, k);
        out += "\":\"";
        common::append_json_escaped(out, v);
        out += "\"";
    }
    if (!t.fields.contains("hash")) out += ",\"hash\":null";
    out += ",\"destinationAmount\":" + (t.amount.empty() ? std::string("null") : t.amount);
    out += ",\"createdTimestamp\":" + std::to_string(t.created_s);
    out += ",\"executedTimestamp\":" +
           (t.executed_s == 0 ? std::string("null") : std::to_string(t.executed_s));
    out += "}";
    return out;
}

// The whole request handling, without sockets: status, body, Retry-After.
struct SimResponse {
    unsigned status = 200;
    std::string body;
    bool retry_after = false;
};

// GET /api/v1/transfers/managed/networks: a fixed list in Mesh's shape, one
// network per address family the consumer checks, and one (Tron) with an
// address pattern, as newer Mesh answers carry.
SimResponse networks_answer() {
    static constexpr std::string_view kNetworks = R"([
{"id":"e3c7fdd8-b1fc-4e51-85ae-bb276e075611","name":"Ethereum","chainId":"1","nativeSymbol":"ETH",
 "networkType":"evm","supportedTokens":["ETH","USDC","USDT"]},
{"id":"7b1c4a0e-3d52-4c2b-9a51-2f0c5e8d9b21","name":"Polygon","chainId":"137","nativeSymbol":"POL",
 "networkType":"evm","supportedTokens":["POL","USDC","USDT"]},
{"id":"0291810a-5947-424d-9a59-e88bb33e999d","name":"Solana","chainId":"101","nativeSymbol":"SOL",
 "networkType":"solana","supportedTokens":["SOL","USDC","USDT"]},
{"id":"a2a6ab44-8e6b-4d3a-9c46-5b8e1f2b6c11","name":"Bitcoin",
 "chainId":"000000000019d6689c085ae165831e93","nativeSymbol":"BTC","networkType":"bitcoin",
 "supportedTokens":["BTC"]},
{"id":"7436e9d0-ba42-4d2b-b4c0-8e4e606b2c12","name":"Tron","chainId":"728126428",
 "nativeSymbol":"TRX","networkType":"tron","supportedTokens":["TRX","USDT"],
 "addressPattern":"^T[1-9A-HJ-NP-Za-km-z]{33}$"}])";
    return {200, envelope("ok", "", "{\"networks\":" + std::string(kNetworks) + "}")};
}

SimResponse handle(SimState& state, http::verb method, std::string_view target,
                   std::string_view client_id, std::string_view client_secret) {
    std::lock_guard lock(state.mutex);
    ++state.requests;
    const std::string_view path = target.substr(0, target.find('?'));
    if (path != kListPath && path != kNetworksPath) {
        return {404, envelope("notFound", "no such route in the simulator", "null")};
    }
    if (method != http::verb::get) {
        return {405, envelope("badRequest", "method not allowed", "null")};
    }
    if (client_id != state.client_id || client_secret != state.client_secret) {
        return {401, envelope("permissionDenied", "Invalid client credentials", "null")};
    }
    if (path == kNetworksPath) return networks_answer();
    if (state.rate_limit_every > 0 && state.requests % state.rate_limit_every == 0) {
        return {429, envelope("tooManyRequest", "Too many requests", "null"), true};
    }
    const auto params = query_params(target);
    std::uint64_t count = 10;
    std::uint64_t offset = 0;
    if (auto it = params.find("Count"); it != params.end()) {
        const auto v = to_uint(it->second);
        if (!v || *v == 0) return {400, envelope("badRequest", "bad Count", "null")};
        count = *v;
    }
    if (auto it = params.find("Offset"); it != params.end()) {
        const auto v = to_uint(it->second);
        if (!v) return {400, envelope("badRequest", "bad Offset", "null")};
        offset = *v;
    }
    count = std::min<std::uint64_t>(count, state.max_count);
    std::vector<const SimTransfer*> matching;
    const auto id = params.find("Id");
    if (id != params.end()) ++state.lookups;
    for (const SimTransfer& t : state.transfers) {
        if (id == params.end() || id->second == t.id) matching.push_back(&t);
    }
    std::string items = "[";
    for (std::uint64_t i = offset; i < matching.size() && i < offset + count; ++i) {
        if (items.size() > 1) items += ',';
        items += item_json(*matching[i]);
    }
    items += "]";
    const bool more = offset + count < matching.size();
    return {200, envelope("ok", "",
                          "{\"items\":" + items + ",\"total\":" + std::to_string(matching.size()) +
                              ",\"hasMorePages\":" + (more ? "true" : "false") + "}")};
}

void serve(tcp::acceptor& acceptor, SimState& state, std::atomic<bool>& stop) {
    while (!stop.load()) {
        boost::system::error_code ec;
        tcp::socket socket(acceptor.get_executor());
        acceptor.accept(socket, ec);
        if (ec) {
            if (stop.load()) return;
            continue;
        }
        // One request at a time on this thread: a stalled client must not hold it.
        timeval timeout{5, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> req;
            http::read(socket, buffer, req, ec);
            if (ec) break;
            const SimResponse r = handle(state, req.method(), req.target(), req["X-Client-Id"],
                                         req["X-Client-Secret"]);
            http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
            res.set(http::field::content_type, "application/json");
            if (r.retry_after) res.set(http::field::retry_after, "1");
            res.body() = r.body;
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(socket, res, ec);
            {
                std::lock_guard lock(state.mutex);
                ++state.answers[static_cast<int>(r.status)];
            }
            if (ec || !req.keep_alive()) break;
        }
        socket.shutdown(tcp::socket::shutdown_both, ec);
        socket.close(ec);
    }
}

std::string run_command(SimState& state, const std::string& verb, std::istream& in) {
    if (verb == "stats") {
        std::lock_guard lock(state.mutex);
        std::string out = "requests=" + std::to_string(state.requests) +
                          " lookups=" + std::to_string(state.lookups) + " answers=";
        bool first = true;
        for (const auto& [status, n] : state.answers) {
            out += (first ? "" : ",") + std::to_string(status) + ":" + std::to_string(n);
            first = false;
        }
        return out;
    }
    if (verb == "transfer") {
        SimTransfer t;
        if (!(in >> t.id >> t.status >> t.amount)) {
            return "error usage: transfer ID STATUS AMOUNT [KEY=VALUE...]";
        }
        if (t.amount == "null") t.amount.clear();
        t.created_s = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        std::string kv;
        while (in >> kv) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos) return "error expected KEY=VALUE, got " + kv;
            const std::string key = kv.substr(0, eq);
            const std::string value = kv.substr(eq + 1);
            if (key == "created" || key == "executed") {
                const auto v = to_uint(value);
                if (!v) return "error " + key + ": unix seconds";
                (key == "created" ? t.created_s : t.executed_s) = static_cast<std::int64_t>(*v);
            } else {
                t.fields[key] = value;
            }
        }
        std::lock_guard lock(state.mutex);
        for (SimTransfer& existing : state.transfers) {
            if (existing.id == t.id) {
                t.created_s = existing.created_s;
                existing = std::move(t);
                return "ok";
            }
        }
        state.transfers.push_back(std::move(t));
        return "ok";
    }
    return "error unknown command: " + verb;
}

}  // namespace

struct MeshSim::Impl {
    SimState state;
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::atomic<bool> stop{false};
    std::thread server;
};

MeshSim::MeshSim(Options options) : impl_(std::make_unique<Impl>()) {
    SimState& state = impl_->state;
    state.client_id = std::move(options.client_id);
    state.client_secret = std::move(options.client_secret);
    state.rate_limit_every = options.rate_limit_every;
    state.max_count = options.max_count;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(options.host, ec);
    if (ec) throw common::ConfigError("bad address " + options.host);
    const tcp::endpoint endpoint(address, options.port);
    tcp::acceptor& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw common::ConfigError(options.host + ":" + std::to_string(options.port) + ": " +
                                  ec.message());
    impl_->server = std::thread([this] { serve(impl_->acceptor, impl_->state, impl_->stop); });
}

MeshSim::~MeshSim() {
    impl_->stop.store(true);
    // Wakes the blocking accept: shutdown makes it fail at once.
    ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    impl_->server.join();
    // Closed once no thread accepts on it (TSan: a close racing the accept).
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
}

std::uint16_t MeshSim::port() const {
    return impl_->acceptor.local_endpoint().port();
}

std::string MeshSim::command(const std::string& verb, std::istream& args) {
    return run_command(impl_->state, verb, args);
}

void MeshSim::put_from_webhooks(const std::vector<std::string>& bodies) {
    common::TransferEventParser parser;
    std::map<std::string, std::pair<int, SimTransfer>> best;  // id -> (rank, transfer)
    std::vector<std::string> order;
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    for (const std::string& body : bodies) {
        const auto parsed = parser.parse(body);
        if (!parsed.ok()) continue;
        const auto& e = parsed.event;
        const int rank = common::status_rank(e.status);
        SimTransfer t;
        t.id = std::string(e.transfer_id.value);
        t.status = std::string(e.transfer_status.value);
        if (e.destination_amount.has_value()) t.amount = std::string(e.destination_amount.value);
        const std::pair<const char*, const common::Field*> fields[] = {
            {"symbol", &e.token},   {"networkName", &e.chain},
            {"hash", &e.tx_hash},   {"destinationAddress", &e.destination_address},
            {"userId", &e.user_id}, {"clientTransactionId", &e.transaction_id}};
        for (const auto& [name, field] : fields) {
            if (field->has_value()) t.fields[name] = std::string(field->value);
        }
        t.created_s = now_s;
        if (common::is_terminal(e.status)) t.executed_s = now_s;
        auto [it, inserted] = best.try_emplace(t.id, rank, t);
        if (inserted) order.push_back(t.id);
        if (!inserted && rank > it->second.first) it->second = {rank, std::move(t)};
    }
    std::lock_guard lock(impl_->state.mutex);
    for (const std::string& id : order) {
        SimTransfer& t = best.at(id).second;
        auto existing = std::find_if(impl_->state.transfers.begin(), impl_->state.transfers.end(),
                                     [&](const SimTransfer& s) { return s.id == id; });
        if (existing == impl_->state.transfers.end()) {
            impl_->state.transfers.push_back(std::move(t));
        } else {
            t.created_s = existing->created_s;
            *existing = std::move(t);
        }
    }
}

}  // namespace meshhook::tools
