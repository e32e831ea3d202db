#pragma once
// The delivery Ids (`Id`, new on every attempt of Mesh's) most recently
// acknowledged by Kafka, per environment, the oldest forgotten first. A body posted
// again with the same Id is a replay of a captured delivery (Mesh's own
// retries carry a new Id): it is answered 200 again without a second record.

#include <cstddef>
#include <memory>
#include <string_view>

namespace meshhook::ingest {

class RecentDeliveries {
public:
    // `capacity` Ids per environment; 0 remembers nothing.
    RecentDeliveries(std::size_t environments, std::size_t capacity);
    ~RecentDeliveries();
    RecentDeliveries(const RecentDeliveries&) = delete;
    RecentDeliveries& operator=(const RecentDeliveries&) = delete;

    // Thread-safe: any I/O thread asks, the thread of the delivery report remembers.
    bool contains(std::size_t environment, std::string_view id) const;
    // The oldest remembered Id of the environment is forgotten when full.
    void remember(std::size_t environment, std::string_view id);
    std::size_t size(std::size_t environment) const;

private:
    struct Ring;
    std::size_t capacity_;
    std::size_t environments_;
    std::unique_ptr<Ring[]> rings_;
};

}  // namespace meshhook::ingest
