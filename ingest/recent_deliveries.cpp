#include "ingest/recent_deliveries.hpp"

#include <bit>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace meshhook::ingest {

// Per environment: the Ids in a ring, oldest overwritten first, and an
// open-addressing index (linear probing) of ring positions. Once the ring has
// gone round, remembering an Id allocates nothing: the slot's string keeps
// its capacity (a list-and-map LRU allocated three times per acknowledged
// delivery, under the lock every I/O thread takes).
struct RecentDeliveries::Ring {
    static constexpr std::uint32_t kEmpty = 0xffffffffU;

    mutable std::mutex mutex;
    std::vector<std::string> ids;      // capacity entries once full
    std::size_t next = 0;              // the ring position written next once full
    std::vector<std::uint32_t> index;  // ring positions; a power of two, at least twice the ring
    std::size_t mask = 0;

    void init(std::size_t capacity) {
        ids.reserve(capacity);
        const std::size_t slots = std::bit_ceil(capacity * 2);
        index.assign(slots, kEmpty);
        mask = slots - 1;
    }
    std::size_t home(std::string_view id) const {
        const std::size_t hash = std::hash<std::string_view>{}(id);
        return hash & mask;
    }

    // The index slot holding `id`, or the empty slot where it would go.
    std::size_t find(std::string_view id) const {
        std::size_t i = home(id);
        while (index[i] != kEmpty && ids[index[i]] != id) i = (i + 1) & mask;
        return i;
    }

    // Backward-shift deletion: later entries of the probe run move up, so no
    // lookup ever stops early at the hole.
    void erase_slot(std::size_t hole) {
        index[hole] = kEmpty;
        for (std::size_t i = (hole + 1) & mask; index[i] != kEmpty; i = (i + 1) & mask) {
            const std::size_t want = home(ids[index[i]]);
            // Moves when its home is not cyclically within (hole, i].
            if (((i - want) & mask) >= ((i - hole) & mask)) {
                index[hole] = index[i];
                index[i] = kEmpty;
                hole = i;
            }
        }
    }
};

RecentDeliveries::RecentDeliveries(std::size_t environments, std::size_t capacity)
    : capacity_(capacity), environments_(environments), rings_(new Ring[environments]) {
    if (capacity_ > 0) {
        for (std::size_t e = 0; e < environments_; ++e) rings_[e].init(capacity_);
    }
}

RecentDeliveries::~RecentDeliveries() = default;

bool RecentDeliveries::contains(std::size_t environment, std::string_view id) const {
    if (capacity_ == 0 || environment >= environments_) return false;
    const Ring& ring_of = rings_[environment];
    const std::lock_guard lock(ring_of.mutex);
    return ring_of.index[ring_of.find(id)] != Ring::kEmpty;
}

void RecentDeliveries::remember(std::size_t environment, std::string_view id) {
    if (capacity_ == 0 || environment >= environments_ || id.empty()) return;
    Ring& ring_of = rings_[environment];
    const std::lock_guard lock(ring_of.mutex);
    if (ring_of.index[ring_of.find(id)] != Ring::kEmpty) return;  // remembered already
    std::uint32_t position = 0;
    if (ring_of.ids.size() < capacity_) {
        position = static_cast<std::uint32_t>(ring_of.ids.size());
        ring_of.ids.emplace_back(id);
    } else {
        position = static_cast<std::uint32_t>(ring_of.next);
        ring_of.next = (ring_of.next + 1) % capacity_;
        ring_of.erase_slot(ring_of.find(ring_of.ids[position]));  // the oldest is forgotten
        ring_of.ids[position].assign(id.data(), id.size());
    }
    ring_of.index[ring_of.find(id)] = position;
}

std::size_t RecentDeliveries::size(std::size_t environment) const {
    if (environment >= environments_) return 0;
    const Ring& ring_of = rings_[environment];
    const std::lock_guard lock(ring_of.mutex);
    return ring_of.ids.size();
}

}  // namespace meshhook::ingest
