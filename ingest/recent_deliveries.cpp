#include "ingest/recent_deliveries.hpp"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace meshhook::ingest {

struct RecentDeliveries::Lru {
    mutable std::mutex mutex;
    std::list<std::string> order;  // most recent first; the map's keys view these strings
    std::unordered_map<std::string_view, std::list<std::string>::iterator> index;
};

RecentDeliveries::RecentDeliveries(std::size_t environments, std::size_t capacity)
    : capacity_(capacity), environments_(environments), lrus_(new Lru[environments]) {}

RecentDeliveries::~RecentDeliveries() = default;

bool RecentDeliveries::contains(std::size_t environment, std::string_view id) const {
    if (capacity_ == 0 || environment >= environments_) return false;
    const Lru& lru = lrus_[environment];
    const std::lock_guard lock(lru.mutex);
    return lru.index.contains(id);
}

void RecentDeliveries::remember(std::size_t environment, std::string_view id) {
    if (capacity_ == 0 || environment >= environments_ || id.empty()) return;
    Lru& lru = lrus_[environment];
    const std::lock_guard lock(lru.mutex);
    if (const auto it = lru.index.find(id); it != lru.index.end()) {
        lru.order.splice(lru.order.begin(), lru.order, it->second);
        return;
    }
    if (lru.order.size() >= capacity_) {
        lru.index.erase(lru.order.back());
        lru.order.pop_back();
    }
    lru.order.emplace_front(id);
    lru.index.emplace(lru.order.front(), lru.order.begin());
}

std::size_t RecentDeliveries::size(std::size_t environment) const {
    if (environment >= environments_) return 0;
    const Lru& lru = lrus_[environment];
    const std::lock_guard lock(lru.mutex);
    return lru.order.size();
}

}  // namespace meshhook::ingest
