// Graph list pages (signIns v1.0/beta, directoryAudits): arbitrary bytes as a page body, read the
// way the poller reads it. The first byte picks the stream (its record hint and sign-in type),
// the rest is the body. Nothing may crash, leak or hang; bad input only yields problems.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/protocol/graph_query.hpp"
#include "fuzz/fuzz_common.hpp"

using namespace glasswatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static constexpr core::graph_kind kinds[] = {
        core::graph_kind::interactive, core::graph_kind::non_interactive,
        core::graph_kind::service_principal, core::graph_kind::managed_identity,
        core::graph_kind::audit};
    const core::graph_kind kind = kinds[data[0] % 5];
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

    core::body_origin origin;
    origin.source = "graph";
    origin.hint = kind == core::graph_kind::audit ? core::record_hint::graph_audit
                                                  : core::record_hint::graph_signin;
    origin.signin = core::signin_of(kind);
    core::process_output out = fuzz::exercise_body(body, origin);
    // The poller follows @odata.nextLink only on the Graph origin (invariant 7).
    if (!out.next_link.empty())
        (void)core::same_origin(out.next_link,
                                core::default_graph_base_url(core::cloud_kind::public_cloud));
    return 0;
}
