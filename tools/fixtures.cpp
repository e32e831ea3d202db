#include "tools/fixtures.hpp"

namespace meshhook::tools {

std::string_view embedded_fixture(std::string_view name) {
    for (const auto& f : embedded_fixtures()) {
        if (f.name == name) return f.body;
    }
    return {};
}

std::vector<EmbeddedFixture> demo_fixtures() {
    std::vector<EmbeddedFixture> out;
    for (const auto& f : embedded_fixtures()) {
        if (f.name >= "01" && f.name < "06") out.push_back(f);
    }
    return out;
}

}  // namespace meshhook::tools
