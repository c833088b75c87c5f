#include "core/detection/event.hpp"

namespace glasswatch::core {

std::string_view to_string(event_kind k) noexcept {
    switch (k) {
        case event_kind::sign_in:
            return "sign-in";
        case event_kind::audit:
            return "audit";
    }
    return "?";
}

std::string_view to_string(signin_type t) noexcept {
    switch (t) {
        case signin_type::none:
            return "none";
        case signin_type::interactive:
            return "interactive";
        case signin_type::non_interactive:
            return "non-interactive";
        case signin_type::service_principal:
            return "service-principal";
        case signin_type::managed_identity:
            return "managed-identity";
    }
    return "?";
}

}  // namespace glasswatch::core
