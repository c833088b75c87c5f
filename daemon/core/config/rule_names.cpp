#include "core/config/rule_names.hpp"

namespace glasswatch::core {

const std::vector<std::string_view>& all_rule_names() {
    static const std::vector<std::string_view> names{
        rules::breakglass_signin,    rules::breakglass_audit_actor, rules::breakglass_audit_target,
        rules::watched_group_change, rules::ca_policy_change,       rules::unparsed_candidate,
    };
    return names;
}

const std::vector<std::string_view>& known_rule_names() {
    static const std::vector<std::string_view> names = [] {
        std::vector<std::string_view> n = all_rule_names();
        for (std::string_view r : {"token_failure",
                                   "token_failure_recovered",
                                   "source_error",
                                   "source_error_recovered",
                                   "source_silent",
                                   "source_silent_recovered",
                                   "source_lagging",
                                   "source_lagging_recovered",
                                   "events_lost",
                                   "store_unwritable",
                                   "store_unwritable_recovered",
                                   "breakglass_active_use",
                                   "drill_overdue",
                                   "config_reload_failed",
                                   "evidence_head",
                                   "config_reload_failed_recovered",
                                   "sink_broken",
                                   "sink_broken_recovered",
                                   "test_alert",
                                   "posture_account_missing",
                                   "posture_account_disabled",
                                   "posture_synced",
                                   "posture_role_not_permanent",
                                   "posture_group_membership",
                                   "posture_ca_not_excluded",
                                   "posture_ca_includes",
                                   "posture_cannot_check",
                                   "posture_fixed"})
            n.push_back(r);
        return n;
    }();
    return names;
}

}  // namespace glasswatch::core
