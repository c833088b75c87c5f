#include "fuzz/fuzz_common.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/alerting/sink_payloads.hpp"
#include "core/detection/matcher.hpp"

namespace glasswatch::fuzz {

namespace {

constexpr std::string_view config_text = R"([tenant]
id = "3d29e181-4b4e-4710-8621-280aad0bc235"
name = "contoso"

[watch]
groups = ["20660f84-11cd-4df4-a61a-637cecf8c343"]
ca_policies = ["8e27ae8f-7b5f-420a-bbc7-fdcdc89d5dfb"]

[[watch.accounts]]
object_id = "ccd9080d-14eb-425d-969a-1577f3f3abeb"
upn = "adele.vance@contoso.example"
label = "bg-adele"

[[watch.accounts]]
object_id = "cc474c45-ee95-4669-8e8e-b7658862e5cc"
upn = "bruno.diaz@contoso.example"

[[watch.accounts]]
object_id = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"
upn = "o'brien.bg@contoso.example"

[[sinks]]
name = "file"
type = "file"
path = "/dev/null"
)";

core::config load() {
    core::config_result r = core::parse_config(config_text, "fuzz.toml");
    if (!r.value) {
        for (const auto& e : r.errors)
            std::fprintf(stderr, "%s\n", core::format_error(e, "fuzz.toml").c_str());
        std::abort();
    }
    return std::move(*r.value);
}

// What each sink would send for a finding: attacker-controlled strings end up in every format.
void render(const core::finding& f) {
    (void)core::pagerduty_trigger(f.a, "routing-key", "glasswatch-fuzz");
    (void)core::twilio_message_form("+15005550006", "+15005550001", "", f.a.sms);
    (void)core::sms_burst_text(f.a.sms, 3);
    (void)core::webhook_body(f.a);
    (void)core::slack_body(f.a);
}

}  // namespace

const core::config& fuzz_config() {
    static const core::config c = load();
    return c;
}

core::process_output exercise_body(std::string_view body, const core::body_origin& origin) {
    // One pipeline and normalizer per process, as in the daemon (parser buffers are reused).
    static core::pipeline pipe(fuzz_config());
    static core::normalizer norm;
    core::process_output out = pipe.process(body, origin, fuzz_now);
    for (const auto& f : out.findings)
        render(f);

    const core::split_result parts = norm.split(body);
    const bool diagnostic = parts.kind == core::body_kind::diagnostic_body;
    for (auto raw : parts.records) {
        core::normalize_result r = norm.normalize(
            raw, diagnostic ? core::record_hint::diagnostic : origin.hint, origin.signin);
        if (r.status == core::normalize_status::ok) (void)core::match_event(pipe.watched(), r.ev);
    }
    return out;
}

void contract_broken(std::string_view what, std::string_view input) {
    std::fprintf(stderr, "\n== contract broken: %.*s\n== input (%zu bytes): %.*s\n",
                 static_cast<int>(what.size()), what.data(), input.size(),
                 static_cast<int>(std::min<std::size_t>(input.size(), 4096)), input.data());
    std::abort();
}

}  // namespace glasswatch::fuzz
