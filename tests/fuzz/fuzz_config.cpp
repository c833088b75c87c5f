// Config loader: arbitrary bytes as the TOML text. parse_config() must return a value or errors,
// never throw or crash. A config it accepts is then taken at its word: every watched UPN must be
// found by the prefilter in the spellings a JSON writer may give it, or the daemon would drop
// that account's sign-ins unseen (prefilter.hpp contract).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/config/config.hpp"
#include "core/detection/matcher.hpp"
#include "core/detection/normalize.hpp"
#include "core/detection/prefilter.hpp"
#include "core/detection/watchlist.hpp"
#include "fuzz/fuzz_common.hpp"

using namespace glasswatch;

namespace {

std::optional<unsigned> private_file(const std::string&) {
    return 0600u;
}

// The spelling of HTML-safe JSON writers (System.Text.Json's default): ' + & < > as \u00XX.
std::string escape_html_sensitive(std::string_view quoted) {
    std::string out;
    for (char c : quoted) {
        if (std::string_view("'+&<>").find(c) == std::string_view::npos) {
            out += c;
            continue;
        }
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(c));
        out += esc;
    }
    return out;
}

void check_upn_spellings(const core::config& c) {
    core::watchlist wl(c.watch);
    core::prefilter pre(wl.all_guids(), wl.all_upns());
    static core::normalizer norm;
    using nlohmann::json;
    for (const auto& a : c.watch.accounts) {
        if (a.upn.empty()) continue;
        std::string upper = a.upn;
        for (char& ch : upper)
            if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        const json::error_handler_t keep = json::error_handler_t::ignore;
        const std::string plain = json(a.upn).dump(-1, ' ', false, keep);
        const std::string spellings[] = {plain, json(upper).dump(-1, ' ', false, keep),
                                         json(a.upn).dump(-1, ' ', true, keep),
                                         escape_html_sensitive(plain)};
        for (const auto& s : spellings) {
            const std::string rec =
                R"({"id":"f","createdDateTime":"2025-11-03T14:22:07Z","userPrincipalName":)" + s +
                "}";
            core::normalize_result r = norm.normalize(rec, core::record_hint::graph_signin);
            if (r.status != core::normalize_status::ok || core::match_event(wl, r.ev).empty())
                continue;  // the spelling is not this UPN after all (e.g. invalid UTF-8)
            if (!pre.may_match(rec))
                fuzz::contract_broken("the prefilter rejects a sign-in by a watched UPN", rec);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    core::config_result r = core::parse_config(text, "fuzz.toml");
    if (r.value.has_value() == !r.errors.empty())
        fuzz::contract_broken("parse_config: a value and errors, or neither", text);
    for (const auto& e : r.errors)
        (void)core::format_error(e, "fuzz.toml");
    if (!r.value) return 0;
    (void)core::check_config_warnings(*r.value, private_file);
    for (const auto& s : r.value->sinks)
        (void)core::url_host(s.url);
    check_upn_spellings(*r.value);
    return 0;
}
