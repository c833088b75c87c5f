// Diagnostic-settings bodies ({"records":[...]} from Event Hubs): arbitrary bytes as a message
// body, handled as the Event Hub source handles one (trim, then the pipeline with the diagnostic
// hint). Nothing may crash, leak or hang; bad input only yields problems.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/protocol/eventhub.hpp"
#include "fuzz/fuzz_common.hpp"

using namespace glasswatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    core::body_origin origin;
    origin.source = "eventhub";
    origin.hint = core::record_hint::diagnostic;
    (void)fuzz::exercise_body(core::trim_body(body), origin);
    return 0;
}
