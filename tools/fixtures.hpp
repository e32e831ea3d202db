#pragma once
// The bodies of tests/fixtures/*.json, compiled into the binary (see
// tools/CMakeLists.txt), so the demo needs no files at run time.

#include <string_view>
#include <vector>

namespace meshhook::tools {

struct EmbeddedFixture {
    std::string_view name;  // file name, e.g. "03-succeeded.json"
    std::string_view body;  // its exact bytes
};

// Sorted by name.
const std::vector<EmbeddedFixture>& embedded_fixtures();

// The body of fixture `name`, or an empty view when there is none.
std::string_view embedded_fixture(std::string_view name);

// The demo sequence: 01..05 (pending, processing, succeeded, Mesh's retry of
// succeeded, a failed other transfer), in order.
std::vector<EmbeddedFixture> demo_fixtures();

// What the demo must produce: one credit for this transfer with this amount text.
inline constexpr std::string_view kDemoTransferId = "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01";
inline constexpr std::string_view kDemoAmount = "250.000000000000000001";

}  // namespace meshhook::tools
